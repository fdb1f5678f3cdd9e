"""The data-quality page (its FastAPI app, sign-in aside) covers every pipeline, each read through its own
warehouse connection, shows a running snapshot's progress and charts freshness; a warehouse that cannot
be read hides only its own tables."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from helpers import T0, create_items, create_lines, make_pipeline, simple_rows, sync_window
from psycopg import sql

from warehouse_sync import tasks
from warehouse_sync.db.connections import WAREHOUSE_CONN_ID, connect_uri
from warehouse_sync.model import RunStart
from warehouse_sync.quality.app import create_app, require_user
from warehouse_sync.run import Run


@pytest.fixture
def second_warehouse(db_uris, monkeypatch):
    """Another warehouse database, as the Airflow connection ``dw_two``."""
    admin = urlunsplit(urlsplit(db_uris[WAREHOUSE_CONN_ID])._replace(path="/postgres"))
    name = f"ws_test_dw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    uri = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    monkeypatch.setenv("AIRFLOW_CONN_DW_TWO", uri)
    conn = connect_uri(uri, "dw_two")
    yield conn
    conn.close()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _page(tmp_path, monkeypatch, pipelines: list[dict]) -> str:
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"pipelines": pipelines}))
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(config))
    app = create_app()
    app.dependency_overrides[require_user] = lambda: object()  # sign-in is the browser layer's test
    response = TestClient(app).get("/")
    return f"{response.status_code}\n{response.text}"


ENTRY = {"primary_key": ["tenant", "id"], "cursor": "updated_at", "settle_timeout_seconds": 0,
         "initial_load": "window"}


def test_the_page_shows_pipelines_on_two_warehouse_connections_and_a_running_snapshots_progress(
        source, warehouse, second_warehouse, tmp_path, monkeypatch):
    create_items(source, simple_rows(30))
    create_lines(source, orders=10)
    items = make_pipeline("items", ("tenant", "id"), max_staleness_minutes=5)
    sync_window(source, warehouse, items, T0, T0 + timedelta(hours=1), tmp_path / "a", run_id="items_run")
    lines = make_pipeline("lines", ("order_id", "line"), warehouse_conn_id="dw_two", snapshot_batch_size=10)
    # a snapshot of lines into the second warehouse, planned and two of its batches extracted: still running
    run = Run(lines, source, second_warehouse, "lines_snapshot")
    planned = tasks.plan(run, RunStart.scheduled(T0, T0 + timedelta(hours=2), full_snapshot=True))
    assert len(planned.batches) >= 3
    for batch in planned.batches[:2]:
        tasks.extract(run, planned, batch, root=tmp_path / "b")

    page = _page(tmp_path, monkeypatch, [
        {"name": "items", "source": "t_src.items", "target": "t_dst.items", "max_staleness_minutes": 5, **ENTRY},
        {"name": "lines", "source": "t_src.lines", "target": "t_dst.lines", "warehouse_conn_id": "dw_two",
         **{**ENTRY, "primary_key": ["order_id", "line"]}}])
    status, _, html = page.partition("\n")
    assert status == "200", html[-2000:]
    assert 'id="items"' in html and 'id="lines"' in html
    assert "items_run" in html, "the first warehouse's runs are read through its connection"
    assert f"2 of {len(planned.batches)} batches extracted, 20 rows so far" in html, (
        "the second warehouse's running snapshot shows its progress")
    assert "Freshness: age of the newest change" in html and "(deadline 5 min)" in html


def test_an_unreadable_warehouse_hides_only_its_own_tables(source, warehouse, tmp_path, monkeypatch):
    create_items(source, simple_rows(5))
    items = make_pipeline("items", ("tenant", "id"))
    sync_window(source, warehouse, items, T0, T0 + timedelta(hours=1), tmp_path, run_id="items_run")
    monkeypatch.setenv("AIRFLOW_CONN_DW_GONE", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": 9, "schema": "nowhere", "login": "x",
        "extra": {"connect_timeout": 2}}))
    page = _page(tmp_path, monkeypatch, [
        {"name": "items", "source": "t_src.items", "target": "t_dst.items", **ENTRY},
        {"name": "gone", "source": "t_src.items", "target": "t_dst.gone", "warehouse_conn_id": "dw_gone", **ENTRY}])
    status, _, html = page.partition("\n")
    assert status == "200" and "items_run" in html
    assert "The warehouse dw_gone cannot be read right now" in html
