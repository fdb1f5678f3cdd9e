"""Alerts reach real local servers: an SMTP server (aiosmtpd) and a Slack-style incoming webhook."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from aiosmtpd.controller import Controller
from helpers import T0, create_lines

from devkit import airflow_local as runner
from warehouse_sync.alerts import send
from warehouse_sync.config import Alerts

pytestmark = pytest.mark.airflow


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        message = message_from_bytes(envelope.content)
        body = message.get_payload(decode=False)
        parts = body if isinstance(body, list) else [message]
        text = "".join(p.get_payload(decode=True).decode() for p in parts if not p.is_multipart())
        self.messages.append({"to": envelope.rcpt_tos, "subject": message["Subject"], "body": text})
        return "250 OK"


@pytest.fixture
def smtp_server(monkeypatch):
    inbox = Inbox()
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_ALERTS", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10}}))
    yield inbox
    controller.stop()


@pytest.fixture
def webhook_server(monkeypatch):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers["Content-Length"])
            received.append({"path": self.path, "json": json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({
        "conn_type": "slackwebhook", "password": f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/X"}))
    yield received
    server.shutdown()


ALERTS = Alerts(smtp_to=("data-team@example.com",), smtp_conn_id="smtp_alerts",
                     smtp_from="sync@example.com", slack_webhook_conn_id="slack_alerts")


def test_an_alert_is_delivered_by_smtp_and_by_webhook(airflow_db, smtp_server, webhook_server):
    sent = send(ALERTS, "[warehouse-sync] t.x: drift", ["table t.x", "missing 2 <keys>"])
    assert sent == ["smtp", "slack_webhook"]
    (mail,) = smtp_server.messages
    assert mail["to"] == ["data-team@example.com"] and mail["subject"] == "[warehouse-sync] t.x: drift"
    assert "missing 2 &lt;keys&gt;" in mail["body"]
    (hook,) = webhook_server
    assert hook["path"] == "/services/T0/B0/X" and "missing 2 <keys>" in hook["json"]["text"]


def test_drift_and_a_failed_task_alert_once_with_table_window_and_keys(
        airflow_db, source, warehouse, smtp_server, webhook_server, tmp_path, monkeypatch):
    create_lines(source, orders=20)
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({
        "defaults": {"settle_timeout_seconds": 0, "repair_max_fraction": 0.5},
        "alerts": {"smtp": {"to": ["data-team@example.com"], "conn_id": "smtp_alerts", "from": "sync@example.com"},
                   "slack_webhook": {"conn_id": "slack_alerts"}},
        "pipelines": [
            {"name": "lines", "source": "t_src.lines", "primary_key": ["order_id", "line"], "cursor": "updated_at",
             "target": "t_dst.lines"},
            {"name": "nope", "source": "t_src.nope", "primary_key": ["id"], "cursor": "updated_at",
             "target": "t_dst.nope"},
        ]}))
    # dag.test() re-parses the DAG folder, so the config must stay in the environment during the runs
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(config))
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", f"file://{tmp_path / 'staging'}")
    dags = runner.load_dags()
    first = runner.run_window(dags["sync_lines"], T0 + timedelta(hours=2), {"full_snapshot": True})
    assert str(first.state) == "success" and smtp_server.messages == []
    warehouse.execute("DELETE FROM t_dst.lines WHERE order_id = 7")  # lost keys: the per-run key check finds them
    warehouse.commit()
    second = runner.run_window(dags["sync_lines"], T0 + timedelta(hours=4))
    assert str(second.state) == "success"
    (drift_mail,) = smtp_server.messages
    assert drift_mail["subject"] == "[warehouse-sync] t_dst.lines: drift found and repaired"
    assert "missing 4" in drift_mail["body"] and "repaired 4 rows" in drift_mail["body"]
    assert "[7, 1]" in drift_mail["body"]
    assert "data interval [" in drift_mail["body"] and "task reconcile" in drift_mail["body"]

    failed = runner.run_window(dags["sync_nope"], T0 + timedelta(hours=2))
    assert str(failed.state) == "failed"
    plan_try = [ti.try_number for ti in failed.get_task_instances() if ti.task_id == "plan"][0]
    assert plan_try == 1  # a missing table is deterministic: failed at once, no retries, one alert
    failure_mail = smtp_server.messages[-1]
    assert failure_mail["subject"] == "[warehouse-sync] t_dst.nope: task plan failed"
    assert "TableNotFound" in failure_mail["body"] and "t_src.nope does not exist" in failure_mail["body"]
    assert len(smtp_server.messages) == 2
    assert [h["json"]["text"].splitlines()[0] for h in webhook_server] == [
        "*[warehouse-sync] t_dst.lines: drift found and repaired*", "*[warehouse-sync] t_dst.nope: task plan failed*"]


@pytest.fixture
def http_endpoint(webhook_server, monkeypatch):
    """The webhook server, also as an HTTP connection ``oncall_http`` (for Airflow's HttpNotifier)."""
    import os

    url = json.loads(os.environ["AIRFLOW_CONN_SLACK_ALERTS"])["password"].split("/services/")[0]
    monkeypatch.setenv("AIRFLOW_CONN_ONCALL_HTTP", json.dumps({"conn_type": "http", "host": url}))
    return webhook_server


def test_each_pipeline_alerts_through_its_own_route_any_airflow_notifier_included(
        airflow_db, source, warehouse, smtp_server, http_endpoint, tmp_path, monkeypatch):
    config = tmp_path / "pipelines.yaml"
    missing = {"primary_key": ["id"], "cursor": "updated_at"}
    config.write_text(yaml.safe_dump({
        "alerts": {
            "smtp": {"to": ["data-team@example.com"], "conn_id": "smtp_alerts", "from": "sync@example.com"},
            "channels": {"oncall": {
                "notifier": "airflow.providers.http.notifications.HttpNotifier",
                "args": {"http_conn_id": "oncall_http", "endpoint": "/alert",
                         "json": {"subject": "{{ alert_subject }}", "text": "{{ alert_text }}",
                                  "dag": "{{ dag.dag_id }}"}}}},
            "default": ["smtp"]},
        "pipelines": [
            {"name": "paged", "source": "t_src.nope", "target": "t_dst.paged", "alerts": ["oncall"], **missing},
            {"name": "mailed", "source": "t_src.nope", "target": "t_dst.mailed", **missing},
        ]}))
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(config))
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", f"file://{tmp_path / 'staging'}")
    dags = runner.load_dags()

    assert str(runner.run_window(dags["sync_paged"], T0 + timedelta(hours=2)).state) == "failed"
    (page,) = http_endpoint
    assert page["path"] == "/alert" and page["json"]["dag"] == "sync_paged"
    assert page["json"]["subject"] == "[warehouse-sync] t_dst.paged: task plan failed"
    assert "t_src.nope" in page["json"]["text"] and smtp_server.messages == []

    assert str(runner.run_window(dags["sync_mailed"], T0 + timedelta(hours=2)).state) == "failed"
    (mail,) = smtp_server.messages
    assert mail["subject"] == "[warehouse-sync] t_dst.mailed: task plan failed" and len(http_endpoint) == 1
