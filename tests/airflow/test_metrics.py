"""Per-pipeline metrics reach a real StatsD listener on localhost through Airflow's own metrics client, and the
freshness deadline (``max_staleness_minutes``) alerts once, not on every run that stays stale."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta

import pytest
import yaml
from helpers import T0, create_lines

from devkit import airflow_local as runner

pytestmark = pytest.mark.airflow
STATSD_PORT = int(os.environ["AIRFLOW__METRICS__STATSD_PORT"])  # the session's, set by tests/conftest.py


@pytest.fixture
def statsd():
    """A StatsD listener (UDP, the session's port): yields the list of ``name:value|type`` lines received."""
    received: list[str] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", STATSD_PORT))
    server.settimeout(0.2)
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                data = server.recv(65535)
            except TimeoutError:
                continue
            received.extend(data.decode().splitlines())

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    # What the task runner does when a worker starts a task: Airflow's metrics client from [metrics].
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    yield received
    stop.set()
    thread.join()
    server.close()


def _values(received: list[str], name: str) -> list[tuple[float, str]]:
    found = []
    for line in received:
        metric, _, rest = line.partition(":")
        if metric == f"airflow.warehouse_sync.lines.{name}":
            value, kind = rest.split("|")[:2]
            found.append((float(value), kind))
    return found


def test_a_sync_run_emits_freshness_rows_bytes_and_drift_and_a_stale_pipeline_alerts_once(
        airflow_db, source, warehouse, statsd, tmp_path, monkeypatch):
    create_lines(source, orders=20)  # cursor values around T0: weeks old, past the one-minute deadline
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"pipelines": [{
        "name": "lines", "source": "t_src.lines", "primary_key": ["order_id", "line"], "cursor": "updated_at",
        "target": "t_dst.lines", "settle_timeout_seconds": 0, "max_staleness_minutes": 1}]}))
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(config))
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", f"file://{tmp_path / 'staging'}")
    dags = runner.load_dags()
    first = runner.run_window(dags["sync_lines"], T0 + timedelta(hours=2), {"full_snapshot": True})
    second = runner.run_window(dags["sync_lines"], T0 + timedelta(hours=4))
    assert str(first.state) == str(second.state) == "success"
    time.sleep(0.5)  # the last datagrams

    (freshness, _) = _values(statsd, "freshness_lag_seconds")[0]
    newest = warehouse.execute("SELECT extract(epoch FROM now() - max(updated_at)) FROM t_dst.lines").fetchone()[0]
    assert abs(freshness - float(newest)) < 60 and _values(statsd, "freshness_lag_seconds")[0][1] == "g"
    assert _values(statsd, "rows_merged") == [(80.0, "c"), (0.0, "c")]
    assert _values(statsd, "rows_staged")[0] == (80.0, "c") and _values(statsd, "bytes_staged")[0][0] > 0
    assert _values(statsd, "drift_rows") == [(0.0, "c"), (0.0, "c")]
    assert _values(statsd, "stale") == [(1.0, "c")], "stale twice, alerted once"

    statuses = warehouse.execute("SELECT status, detail->>'max_staleness_minutes' FROM warehouse_sync.audit "
                                 "WHERE pipeline = 'lines' AND step = 'freshness' ORDER BY id").fetchall()
    assert statuses == [("stale", "1"), ("stale", "1")]
