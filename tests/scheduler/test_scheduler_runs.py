"""The DAGs under a real ``airflow scheduler`` (LocalExecutor, PostgreSQL metadata database,
``airflow dag-processor``, ``airflow api-server``): the ways a run starts, and how it fails.

Order and shared state. The tests share the session's processes and databases and run in file
order, each continuing from what the one before left, because that is what a deployment does
(a new pipeline is unpaused once, then triggered, backfilled, and one day its source changes):

1. unpausing is the first thing that happens to the DAG, so this test must run first in the
   session (it fails, with that reason, if the DAG was already unpaused or has runs);
2-5. need "a synced pipeline": the DAG unpaused, no run active, a high watermark, and the warehouse
   equal to the source below it. The ``synced`` fixture (``conftest.py``) checks that and, only when it does not hold
   (an earlier test failed or was deselected), establishes it itself: it empties the warehouse and
   triggers a ``{"full_snapshot": true}`` run. So each test can run alone (``-k``) and a failure
   does not cascade, while the normal order costs no extra run.

Windows: test 1's run has the data interval ``[A - 2h, A)`` (``A`` the latest two-hour boundary),
test 3 triggers logical date ``A - 6h`` from the CLI (which gives the interval ``[A - 2h, A)``
derived from the trigger time, and the run syncs that), test 4 posts the Trigger
form's payload (logical date now: interval ``[A - 2h, A)`` again, with late rows in it), test 5
backfills ``A - 16h`` .. ``A - 10h``; tests 2 and 6 trigger without a logical date. Test 6 changes
the source's schema, so it runs last (and restores it). No pool is imported: the extracts run in
``default_pool``, as in a deployment that skipped the optional pools step.

Each test names the behaviour it proves; timings go to the session summary (``-s`` shows them
as they happen).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import scheduler_harness as h
from scheduler_harness import DAG_ID, RUN_TIMEOUT, WINDOW, floor_boundary, utcnow

pytestmark = pytest.mark.scheduler


def _stamp() -> str:
    return utcnow().strftime("%Y%m%dT%H%M%S")


def test_unpausing_a_new_pipeline_gives_a_first_run_that_snapshots_the_source_without_retries(stack):
    assert stack.is_paused() and not stack.runs(), (
        f"this test needs a DAG that was never unpaused (run it first in the session): paused={stack.is_paused()}, "
        f"runs={stack.runs()}")
    assert stack.high_watermark() is None and stack.checksums(utcnow())[1] == (0, 0), "the warehouse should be empty"
    boundary_before = floor_boundary(utcnow())
    unpaused = time.monotonic()
    stack.airflow("dags", "unpause", DAG_ID)
    (first,) = stack.wait_for("the scheduler to create the first run", stack.runs, timeout=60)
    run = stack.wait_for_run(first["run_id"], RUN_TIMEOUT)
    seconds = time.monotonic() - unpaused
    stack.note(f"unpause -> first run {run['run_id']} {run['state']}: {seconds:.1f}s "
               f"(interval [{run['data_interval_start']}, {run['data_interval_end']}))")

    assert run["run_type"] == "scheduled", run
    assert run["data_interval_end"] in (boundary_before, floor_boundary(utcnow())), (
        f"the first run should be the latest complete interval (ending {boundary_before}): {run}")
    stack.assert_success(run)
    tis = stack.task_instances(run["run_id"])
    retried = [t for t in tis if t["try_number"] > 1]
    assert not retried, f"task instances retried: {retried}\n" + stack.explain(run["run_id"])
    assert len([t for t in tis if t["task_id"] == "extract"]) >= 2, f"the snapshot should map several extracts: {tis}"
    pools = stack.api_get("/api/v2/pools")["pools"]
    assert [p["name"] for p in pools] == ["default_pool"], f"this deployment imported no pool: {pools}"
    assert {t["pool"] for t in tis} == {"default_pool"}, f"with no pool named, every task runs in default_pool: {tis}"
    end = run["data_interval_end"]
    older = stack.query("source", "SELECT count(*) AS n FROM t_sched.orders WHERE updated_at < %s",
                        (run["data_interval_start"],))[0]["n"]
    assert older > 0, "the source should have rows before the run's interval (else snapshot = window)"
    count, _ = stack.assert_in_sync(end, "first run (initial snapshot: every row before the window end)",
                               run["run_id"])
    stack.note(f"first run loaded {count} rows, {older} of them older than its own two-hour interval")


def test_a_trigger_without_a_logical_date_syncs_from_the_watermark_to_the_trigger_time(stack, synced):
    watermark = synced
    stack.query("source", "UPDATE t_sched.orders SET status = 'refunded', amount = amount + 1, updated_at = now() "
                          "WHERE id % 50 = 7")
    stack.query("source", "INSERT INTO t_sched.orders SELECT 100000 + g, 'new', g * 1.25, now() "
                          "FROM generate_series(1, 5) g")
    run_id = f"manual__no_logical_date_{_stamp()}"
    run = stack.trigger(run_id)

    assert run["logical_date"] is None and run["run_type"] == "manual", run
    stack.assert_success(run)
    window = stack.plan_window(run_id)
    assert window is not None, f"no plan audit row for {run_id}\n" + stack.explain(run_id)
    assert (window["window_start"], window["window_end"]) == (watermark, run["run_after"]), (
        f"expected the window [watermark {watermark}, run_after {run['run_after']}), got "
        f"[{window['window_start']}, {window['window_end']}) ({window['detail']})")
    stack.assert_in_sync(run["run_after"], "trigger without a logical date", run_id)


def test_a_manual_run_with_a_logical_date_syncs_the_data_interval_the_ui_shows(stack, synced):
    logical = floor_boundary(utcnow()) - timedelta(hours=6)
    run_id = f"manual__logical_date_{_stamp()}"
    run = stack.trigger(run_id, "-l", logical.isoformat())

    assert run["logical_date"] == logical and run["run_type"] == "manual", run
    stack.assert_success(run)
    window = stack.plan_window(run_id)
    assert window is not None, f"no plan audit row for {run_id}\n" + stack.explain(run_id)
    stack.note(f"manual run with logical date {logical}: Airflow's data interval "
               f"[{run['data_interval_start']}, {run['data_interval_end']}), synced window "
               f"[{window['window_start']}, {window['window_end']})")
    # Airflow's CLI derives the interval from the trigger time (the last complete interval before it), not from L.
    interval = (run["data_interval_start"], run["data_interval_end"])
    assert (window["window_start"], window["window_end"]) == interval, (
        f"a manual run should sync the data interval Airflow gave it (the UI shows it) {interval}, synced "
        f"[{window['window_start']}, {window['window_end']}) ({window['detail']})")
    assert interval[1] <= run["run_after"], f"the window ends after the trigger time: {interval}, {run['run_after']}"
    label = stack.plan_label(run_id)
    assert label and interval[0].isoformat() in label and interval[1].isoformat() in label, (
        f"the plan task's label in the UI should show the synced window: {label!r}")
    stack.assert_in_sync(interval[1], "manual run with a logical date", run_id)


def test_the_trigger_forms_run_with_logical_date_now_syncs_its_data_interval_ending_before_the_trigger(
        stack, synced):
    # What the UI's Trigger form posts: the logical date field filled with now.
    # Late arrivals inside the last complete interval, which its scheduled run never saw: this run brings them.
    stack.query("source", "INSERT INTO t_sched.orders SELECT 300000 + g, 'late', g * 0.75, "
                          "%s + g * interval '1 minute' FROM generate_series(1, 5) g",
                (floor_boundary(utcnow()) - timedelta(minutes=30),))
    run_id = f"manual__trigger_form_{_stamp()}"
    now = utcnow()
    posted = stack.api_post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                            {"dag_run_id": run_id, "logical_date": now.isoformat(), "conf": {}, "note": None})
    assert posted["run_type"] == "manual", posted
    run = stack.wait_for_run(run_id)
    stack.assert_success(run)
    window = stack.plan_window(run_id)
    assert window is not None, f"no plan audit row for {run_id}\n" + stack.explain(run_id)
    interval = (run["data_interval_start"], run["data_interval_end"])
    stack.note(f"Trigger form at {now:%H:%M:%S}: data interval [{interval[0]}, {interval[1]}), synced "
               f"[{window['window_start']}, {window['window_end']}), run_after {run['run_after']}")
    assert (window["window_start"], window["window_end"]) == interval, (
        f"the Trigger form's run should sync the data interval the UI shows {interval}, synced "
        f"[{window['window_start']}, {window['window_end']}) ({window['detail']})")
    assert window["window_end"] <= run["run_after"], f"the window ends after the trigger time: {window}, {run}"
    assert str(interval[0].isoformat()) in (stack.plan_label(run_id) or ""), stack.plan_label(run_id)
    stack.assert_in_sync(interval[1], "Trigger form run (logical date = now)", run_id)


def test_a_backfill_over_four_windows_run_backwards_three_at_a_time_converges(stack, synced):
    anchor = floor_boundary(utcnow())
    first, last = anchor - timedelta(hours=16), anchor - timedelta(hours=10)
    end = last + WINDOW
    # Rows that arrived late in each of the four windows (the warehouse never saw them): the
    # backfill has something to bring, and the target differs from the source before it runs.
    stack.query("source", "INSERT INTO t_sched.orders SELECT 200000 + w * 10 + k, 'late', w + k * 0.5, "
                          "%s + w * interval '2 hours' + k * interval '17 minutes' "
                          "FROM generate_series(0, 3) w, generate_series(1, 3) k", (first,))
    before_source, before_warehouse = stack.checksums(end)
    assert before_source != before_warehouse and before_source[0] == before_warehouse[0] + 12, (
        before_source, before_warehouse)

    started = time.monotonic()
    stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(), "--to-date",
                  last.isoformat(), "--max-active-runs", "3", "--run-backwards")
    backfill = stack.query("meta", "SELECT id, max_active_runs FROM backfill WHERE dag_id = %s "
                                   "ORDER BY id DESC LIMIT 1", (DAG_ID,))
    assert backfill and backfill[0]["max_active_runs"] == 3, backfill
    backfill_id = backfill[0]["id"]

    def all_done():
        runs = stack.query("meta", "SELECT run_id, state, run_type, logical_date, data_interval_start, "
                                   "data_interval_end, start_date, end_date FROM dag_run WHERE backfill_id = %s "
                                   "ORDER BY logical_date", (backfill_id,))
        return runs if len(runs) == 4 and all(r["state"] in h.TERMINAL for r in runs) else None

    runs = stack.wait_for(f"the 4 runs of backfill {backfill_id} to finish", all_done, timeout=2 * RUN_TIMEOUT)
    stack.note(f"backfill {backfill_id}: 4 runs finished {time.monotonic() - started:.1f}s after `backfill create` "
               f"returned; " + ", ".join(f"{r['logical_date']:%H:%M} {r['state']} "
                                          f"{(r['end_date'] - r['start_date']).total_seconds():.0f}s" for r in runs))

    failed = [r for r in runs if r["state"] != "success"]
    assert not failed, "backfill runs failed:\n" + "\n".join(stack.explain(r["run_id"]) for r in failed)
    assert [r["logical_date"] for r in runs] == [first + i * WINDOW for i in range(4)], runs
    assert {r["run_type"] for r in runs} == {"backfill"}, runs
    # run backwards, three at a time: the oldest window starts last, after one of the others ended
    by_start = sorted(runs, key=lambda r: r["start_date"])
    assert by_start[-1]["logical_date"] == first, f"the oldest window should start last: {by_start}"
    assert by_start[-1]["start_date"] >= min(r["end_date"] for r in runs if r["logical_date"] != first), by_start
    most_at_once = max(sum(1 for o in runs if o["start_date"] <= r["start_date"] < o["end_date"]) for r in runs)
    assert most_at_once == 3, f"the backfill should run three at a time, ran {most_at_once} at most: {by_start}"
    stack.note(f"backfill: {most_at_once} runs at once; start order "
               + ", ".join(f"{r['logical_date']:%H:%M}" for r in by_start))
    for r in runs:
        window = stack.plan_window(r["run_id"])
        assert window and (
            (window["window_start"], window["window_end"]) == (r["data_interval_start"], r["data_interval_end"])
            == (r["logical_date"], r["logical_date"] + WINDOW)), (
            f"backfill run {r['run_id']} should sync its data interval, synced {window}")
        assert str(r["data_interval_start"].isoformat()) in (stack.plan_label(r["run_id"]) or ""), (
            f"the plan task's label should show the synced window: {stack.plan_label(r['run_id'])!r}")
    stack.assert_in_sync(end, "backfill over four windows")


def test_a_breaking_schema_change_fails_on_the_first_try_with_one_alert(stack, synced):
    stack.inbox.clear()
    stack.query("source", "ALTER TABLE t_sched.orders ALTER COLUMN status TYPE integer USING 0")
    try:
        stack.query("source", "UPDATE t_sched.orders SET updated_at = now() WHERE id % 100 = 3")  # rows in the window
        run_id = f"manual__schema_change_{_stamp()}"
        run = stack.trigger(run_id)

        assert run["state"] == "failed", f"run {run_id} should fail\n" + stack.explain(run_id)
        tis = {(t["task_id"], t["map_index"]): t for t in stack.task_instances(run_id)}
        load = tis.get(("load", -1))
        assert load and load["state"] == "failed" and load["try_number"] == 1, (
            f"load should fail on its first try (a deterministic error, no retry): {load}\n" + stack.explain(run_id))
        failed = sorted(k for k, t in tis.items() if t["state"] == "failed")
        assert failed == [("load", -1)], f"only load should fail: {failed}\n" + stack.explain(run_id)

        stack.wait_for("the failure alert e-mail", lambda: stack.inbox.messages, timeout=60, run_id=run_id)
        time.sleep(5)  # a duplicate would arrive right after the first
        mails = stack.inbox.messages
        stack.note(f"schema change: alert(s) received: {[m['subject'] for m in mails]}")
        # Only a scheduled run created meanwhile (the session crossed an even UTC hour) may add its own alert.
        others = {r["run_id"] for r in stack.runs() if r["run_id"] != run_id and r["state"] == "failed"}
        mine = [m for m in mails if run_id in m["body"]]
        strangers = [m for m in mails if m not in mine and not any(o in m["body"] for o in others)]
        assert len(mine) == 1 and not strangers, (
            f"expected exactly one alert (for {run_id}), got {len(mails)}: {[m['subject'] for m in mails]}\n"
            + "\n\n".join(m["body"] for m in mails))
        (mail,) = mine
        assert mail["to"] == ["ops@example.com"], mail
        assert "t_sched.orders" in mail["subject"] and "load" in mail["subject"], mail["subject"]
    finally:
        stack.query("source", "ALTER TABLE t_sched.orders ALTER COLUMN status TYPE text USING status::text")
