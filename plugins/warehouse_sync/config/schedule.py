"""A sync DAG's schedule as configured: a five-field cron expression or an Airflow preset, in UTC.

The ``schedule:`` of a pipeline (default :data:`SYNC_SCHEDULE`, every two hours) is checked when the
file is read, so a typo is a configuration error naming the file, the pipeline and the field rather
than a DAG that never runs. The sync DAG runs it as its ``CronDataIntervalTimetable`` (UTC), and the
plan task computes a manual run's window from the same expression (:func:`cron_expression`).
"""

from __future__ import annotations

# The DAGs' default schedules (cron, UTC): the two-hourly sync and the daily reconcile.
SYNC_SCHEDULE = "0 */2 * * *"
RECONCILE_SCHEDULE = "0 3 * * *"

# Airflow 3's cron presets (airflow.sdk.definitions.timetables._cron.CRON_PRESETS), copied so that
# reading the config imports no Airflow; a preset stands for its expression everywhere.
CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def cron_expression(schedule: str) -> str:
    """The five-field cron expression of ``schedule`` (a preset expanded, an expression as given)."""
    return CRON_PRESETS.get(schedule.strip(), schedule.strip())


def check_schedule(schedule: str) -> str:
    """Validates a configured schedule.

    Args:
        schedule: A five-field cron expression (``0 */2 * * *``, minute hour day month weekday, UTC)
            or one of the presets ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@quarterly``,
            ``@yearly``.

    Returns:
        ``schedule``, stripped of surrounding blanks.

    Raises:
        ValueError: Not a valid five-field cron expression or preset (``@once``, ``@continuous`` and
            none are refused: a sync run owns a data interval, so it needs a recurring one).
    """
    from croniter import croniter

    schedule = schedule.strip()
    expression = cron_expression(schedule)
    if schedule.startswith("@") and schedule not in CRON_PRESETS:
        raise ValueError(f"unknown preset {schedule!r}; use a cron expression or one of {', '.join(CRON_PRESETS)} "
                         "(a sync run owns a data interval, so it needs a recurring schedule)")
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"{schedule!r} is not a five-field cron expression (minute hour day month weekday, UTC, "
                         "e.g. '0 */2 * * *') or a preset (" + ", ".join(CRON_PRESETS) + ")")
    return schedule
