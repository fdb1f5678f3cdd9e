"""The data-quality page (its FastAPI app, sign-in aside) covers every pipeline the user may read, each read
through its own warehouse connection, shows a running snapshot's progress and charts freshness; a warehouse
that cannot be read hides only its own tables. Every answer carries a Content-Security-Policy: strict for
the page, a sandbox (opaque origin) for the Data Docs."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi.testclient import TestClient
from helpers import T0, create_items, create_lines, make_pipeline, simple_rows, sync_window
from psycopg import sql

from warehouse_sync import tasks
from warehouse_sync.db.connections import WAREHOUSE_CONN_ID, connect_uri
from warehouse_sync.model import RunStart
from warehouse_sync.quality.app import auth_manager, create_app, require_user
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


VIEWER = SimpleAuthManagerUser(username="ana", role="viewer")


class DeniesOneDag(SimpleAuthManager):
    """The simple auth manager, except that nobody may read ``denied`` (it has no per-DAG rules of its own;
    FAB and Keycloak do)."""

    def __init__(self, denied: str) -> None:
        super().__init__()
        self.denied = denied

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if details is not None and details.id == self.denied:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)


def _client(tmp_path, monkeypatch, pipelines: list[dict], manager: SimpleAuthManager | None = None) -> TestClient:
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"pipelines": pipelines}))
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(config))
    app = create_app()
    app.dependency_overrides[require_user] = lambda: VIEWER  # sign-in is the browser layer's test
    app.dependency_overrides[auth_manager] = lambda: manager or SimpleAuthManager()
    return TestClient(app)


def _page(tmp_path, monkeypatch, pipelines: list[dict]) -> str:
    response = _client(tmp_path, monkeypatch, pipelines).get("/")
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


ITEMS = {"name": "items", "source": "t_src.items", "target": "t_dst.items", **ENTRY}
LINES = {"name": "lines", "source": "t_src.lines", "target": "t_dst.lines",
         **{**ENTRY, "primary_key": ["order_id", "line"]}}


def _data_docs(tmp_path, monkeypatch, *pipelines: str) -> None:
    """A Data Docs page per pipeline under a reports root of the test's own."""
    for name in pipelines:
        page = tmp_path / "reports" / "data_docs" / name / "run1" / "validations" / "page.html"
        page.parent.mkdir(parents=True)
        page.write_text(f"<!DOCTYPE html><p>failing values of {name}</p>"
                        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>')
    monkeypatch.setenv("WAREHOUSE_SYNC_REPORTS_ROOT", f"file://{tmp_path / 'reports'}")


def _directives(header: str) -> dict[str, str]:
    return {d.split()[0]: d.partition(" ")[2] for d in (p.strip() for p in header.split(";")) if d}


def test_the_page_and_its_error_answers_send_a_strict_content_security_policy(warehouse, tmp_path, monkeypatch):
    client = _client(tmp_path, monkeypatch, [ITEMS])
    response = client.get("/")
    assert response.status_code == 200, response.text[-2000:]
    csp = _directives(response.headers["content-security-policy"])
    assert csp["default-src"] == "'none'" and "script-src" not in csp, "no script may run on the page"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{20,})'", csp["style-src"])
    assert nonce and f'<style nonce="{nonce.group(1)}">' in response.text, "only its own style block applies"
    assert csp["frame-ancestors"] == "'self'" and csp["base-uri"] == "'none'" and csp["form-action"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/").headers["content-security-policy"] != response.headers["content-security-policy"], (
        "a fresh nonce per answer")
    missing = client.get("/docs/items/nothing.html")
    assert missing.status_code == 404 and _directives(missing.headers["content-security-policy"])["default-src"] \
        == "'none'"


def test_data_docs_are_served_in_a_sandbox_without_the_airflow_origin(warehouse, tmp_path, monkeypatch):
    _data_docs(tmp_path, monkeypatch, "items")
    response = _client(tmp_path, monkeypatch, [ITEMS]).get("/docs/items/run1/validations/page.html")
    assert response.status_code == 200 and "failing values of items" in response.text
    csp = _directives(response.headers["content-security-policy"])
    sandbox = csp["sandbox"].split()
    assert "allow-scripts" in sandbox and "allow-same-origin" not in sandbox, (
        "scripts run in an opaque origin: no Airflow cookie, no same-origin requests as the viewer")
    assert not {"allow-top-navigation", "allow-forms", "allow-modals"} & set(sandbox)
    assert csp["connect-src"] == "'none'" and csp["form-action"] == "'none'" and csp["default-src"] == "'none'"
    assert "https://cdn.jsdelivr.net" in csp["script-src"] and "*" not in csp["script-src"]


def test_a_user_sees_only_the_pipelines_whose_sync_dag_they_may_read(source, warehouse, tmp_path, monkeypatch):
    create_items(source, simple_rows(5))
    create_lines(source, orders=3)
    sync_window(source, warehouse, make_pipeline("items", ("tenant", "id")), T0, T0 + timedelta(hours=1),
                tmp_path / "a", run_id="items_run")
    sync_window(source, warehouse, make_pipeline("lines", ("order_id", "line")), T0, T0 + timedelta(hours=1),
                tmp_path / "b", run_id="lines_run")
    _data_docs(tmp_path, monkeypatch, "items", "lines")

    everyone = _client(tmp_path, monkeypatch, [ITEMS, LINES])  # the simple auth manager: a viewer reads every DAG
    html = everyone.get("/").text
    assert "items_run" in html and "lines_run" in html and "not shown" not in html
    assert everyone.get("/docs/lines/run1/validations/page.html").status_code == 200

    client = _client(tmp_path, monkeypatch, [ITEMS, LINES], DeniesOneDag("sync_lines"))
    response = client.get("/")
    assert response.status_code == 200 and 'id="items"' in response.text and "items_run" in response.text
    assert 'id="lines"' not in response.text and "lines_run" not in response.text and "t_dst.lines" not in \
        response.text, "nothing of a pipeline whose sync DAG the user may not read"
    assert "1 more pipeline not shown: your Airflow user may not read its sync DAG." in response.text
    denied = client.get("/docs/lines/run1/validations/page.html")
    assert denied.status_code == 403 and "failing values" not in denied.text
    assert client.get("/docs/items/run1/validations/page.html").status_code == 200
    assert client.get("/docs/gone/run1/validations/page.html").status_code == 404, "no configured pipeline"


def test_great_expectations_own_assets_load_in_the_sandbox_without_sign_in_and_show_no_data(tmp_path, monkeypatch):
    """A sandboxed page's requests carry no Airflow cookie: GX's stylesheet must come without sign-in."""
    _data_docs(tmp_path, monkeypatch, "items")
    (tmp_path / "reports" / "data_docs" / "items" / "run1" / "static").mkdir()
    (tmp_path / "reports" / "data_docs" / "items" / "run1" / "static" / "secret.html").write_text("failing values")
    app = create_app()  # no dependency override: an anonymous request
    client = TestClient(app)
    css = client.get("/docs/items/run1/static/styles/data_docs_default_styles.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "{" in css.text
    assert client.get("/docs/items/run1/static/secret.html").status_code == 404, "never the reports root"
    assert client.get("/docs/items/run1/static/../../../../pyproject.toml").status_code == 404
    assert client.get("/docs/items/run1/static/%2e%2e/%2e%2e/__init__.py").status_code == 404
