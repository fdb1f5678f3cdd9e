"""Alerts that reach people: drift found, repair refused, a source schema change, a late horizon bounded, a failed task.

Sent through Airflow's notifier interface: the built-in channels with the maintained providers'
``SmtpNotifier`` (``apache-airflow-providers-smtp``) and ``SlackWebhookNotifier``
(``apache-airflow-providers-slack``), and any other Airflow notifier configured as a channel (a
webhook through ``HttpNotifier``, apprise, PagerDuty, ...), rendered with ``alert_subject`` and
``alert_text`` in its template context. Which channels a pipeline's alerts reach is its route
(:mod:`warehouse_sync.config.alerts`); the DAG file gives each pipeline's tasks its routed channels.
A message names the DAG, task, table, window, what went wrong (counts, checksums, a sample of keys)
and links to the task's log. A channel that fails to deliver is logged and does not hide the others.
"""

from __future__ import annotations

import copy
import html
import importlib
import json
import logging
from typing import Any

from warehouse_sync.config import Alerts
from warehouse_sync.config.alerts import Channel
from warehouse_sync.redact import redact

log = logging.getLogger(__name__)


def _notifiers(alerts: Alerts, subject: str, text: str) -> list[tuple[str, Any]]:
    channels: list[tuple[str, Any]] = []
    if alerts.smtp_to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        channels.append(("smtp", SmtpNotifier(
            to=list(alerts.smtp_to), from_email=alerts.smtp_from, subject=subject,
            html_content=f"<pre>{html.escape(text)}</pre>", smtp_conn_id=alerts.smtp_conn_id)))
    if alerts.slack_webhook_conn_id:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        channels.append(("slack_webhook", SlackWebhookNotifier(
            slack_webhook_conn_id=alerts.slack_webhook_conn_id, text=f"*{subject}*\n```{text}```")))
    return channels


def _configured(channel: Channel) -> Any:
    """A new instance of a configured notifier (its class imported from the channel's path)."""
    module, _, name = channel.notifier.rpartition(".")
    return getattr(importlib.import_module(module), name)(**copy.deepcopy(channel.args))


def send(alerts: Alerts, subject: str, lines: list[str], context: Any = None) -> list[str]:
    """Sends one alert to every configured channel.

    Args:
        alerts: Channels.
        subject: One line: what happened to which table.
        lines: The message body, one fact per line.
        context: The Airflow task context (notifiers receive it), or ``None`` outside a task.

    Source row values in PostgreSQL's messages (``Failing row contains (…)``) are redacted first.

    Returns:
        Names of the channels that accepted the message.
    """
    subject, text = redact(subject), redact("\n".join(lines))
    log.warning("ALERT %s\n%s", subject, text)
    sent = []
    for name, notifier in _notifiers(alerts, subject, text):
        try:
            notifier.notify(context or {})  # the message is already in its fields: nothing to render
            sent.append(name)
        except Exception:  # one broken channel must not silence the others
            log.exception("alert channel %s failed", name)
    for channel in alerts.channels:
        try:
            # calling a notifier renders its templated fields with this context, then notifies
            _configured(channel)({**(context or {}), "alert_subject": subject, "alert_text": text})
            sent.append(channel.name)
        except Exception:
            log.exception("alert channel %s (%s) failed", channel.name, channel.notifier)
    return sent


def _where(context: Any) -> list[str]:
    ti = context.get("ti")
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    lines = [f"DAG {context['dag'].dag_id if context.get('dag') else getattr(ti, 'dag_id', '?')}, "
             f"task {getattr(ti, 'task_id', '?')}, run {context.get('run_id', '?')}"]
    if start and end:
        lines.append(f"data interval [{start.isoformat()}, {end.isoformat()})")
    try:
        lines.append(f"logs: {ti.log_url}")
    except Exception:  # no API server URL configured
        pass
    return lines


def alert_failure(context: Any, alerts: Alerts, table: str) -> list[str]:
    """``on_failure_callback`` body: a task failed after all its retries."""
    error = context.get("exception")
    lines = [f"table {table}"] + _where(context) + [f"error: {type(error).__name__}: {error}"]
    return send(alerts, f"[warehouse-sync] {table}: task {getattr(context.get('ti'), 'task_id', '?')} failed", lines,
                context)


def alert_drift(context: Any, alerts: Alerts, table: str, drift: dict[str, Any]) -> list[str]:
    """Drift was found and repaired: counts and a sample of keys.

    Called by :func:`warehouse_sync.reconcile.loop.reconcile` (as its ``on_drift``) only when keys
    differed; rows that were merely in flight never alert.
    """
    lines = [f"table {table}"] + _where(context) + [
        f"missing {drift.get('missing', 0)}, extra (deleted at source) {drift.get('extra', 0)}, "
        f"changed {drift.get('changed', 0)}; repaired {drift.get('repaired', 0)} rows",
        f"sample missing: {json.dumps(drift.get('sample_missing', []))}",
        f"sample extra: {json.dumps(drift.get('sample_extra', []))}",
        f"sample changed (key: columns): {json.dumps(drift.get('sample_changed', {}))}",
    ]
    return send(alerts, f"[warehouse-sync] {table}: drift found and repaired", lines, context)


def alert_schema_change(context: Any, alerts: Alerts, table: str, report: dict[str, Any]) -> list[str]:
    """The load met a source schema change: one line per column, with what the policy made of it.

    Called by :func:`warehouse_sync.sync.load.load_files` (as its ``on_schema_change``) with the
    changes it recorded: ``{"table", "source", "policy", "changes": [{"column", "change", "old_type",
    "new_type", "outcome", "detail"}, ...]}``. Applied, kept and ignored changes alert here. A
    rejected change fails the load task at once (no retries), and that task's failure alert
    (:func:`alert_failure`) carries the full message (table, column, both types, the way out), so it
    is not sent twice: when every change was rejected, nothing is sent here.
    """
    changes = report.get("changes", [])
    accepted = [c for c in changes if c.get("outcome") != "rejected"]
    if not accepted:
        log.info("schema change of %s rejected: the load's failure alert reports it", table)
        return []
    outcomes = sorted({c["outcome"] for c in accepted})
    lines = [f"table {table} (source {report.get('source', '?')}), schema_changes: {report.get('policy', '?')}"]
    lines += _where(context)
    for c in changes:
        types = (f"{c['old_type']} -> {c['new_type']}" if c.get("old_type") and c.get("new_type")
                 else c.get("new_type") or c.get("old_type") or "")
        lines.append(f"column {c['column']}: {c['change']} ({types}): {c['outcome']}, {c['detail']}")
    return send(alerts, f"[warehouse-sync] {table}: source schema changed ({', '.join(outcomes)})", lines, context)


def alert_health(context: Any, alerts: Alerts, table: str, lines: list[str]) -> list[str]:
    """Sends the health lines a mode reported over its thresholds; nothing when there are none.

    CDC: the replication slot's retained WAL or lag, a missing slot.
    """
    if not lines:
        return []
    return send(alerts, f"[warehouse-sync] {table}: health over threshold", list(lines), context)


def alert_plan(context: Any, alerts: Alerts, table: str, lines: list[str]) -> list[str]:
    """Sends what the plan could not make safe and must tell once; nothing when there is none.

    The late horizon's bound hit by a source transaction open too long (once per transaction:
    :func:`warehouse_sync.db.inflight.settle`).
    """
    if not lines:
        return []
    return send(alerts, f"[warehouse-sync] {table}: late commits not re-read", _where(context) + list(lines), context)
