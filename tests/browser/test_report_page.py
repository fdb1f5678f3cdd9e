"""The "Data quality" page in the real Airflow API server, in a real browser (Debian's headless Chromium).

TPC-H SF 0.01 goes through the real DAGs (snapshot, one window, then a window with refresh set 1 and
one deliberately broken order), the API server is started with the plugin and a signed-in analyst
user, and Chromium reads the page. A screenshot is saved to ``test-artifacts/`` (or
``$WAREHOUSE_SYNC_TEST_ARTIFACTS``). Skipped only where Chromium is not installed; ``.ci/run``
installs it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devkit import airflow_local as runner
from devkit import tpch
from warehouse_sync.db.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, connect_uri

pytestmark = pytest.mark.airflow
REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("WAREHOUSE_SYNC_TEST_ARTIFACTS", REPO / "test-artifacts"))
USER, PASSWORD = "analyst", "analyst-test-password"
# Skipped only where Chromium is absent, and never in CI (.ci/run installs it and sets the variable).
needs_chromium = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists())
    and not os.environ.get("WAREHOUSE_SYNC_REQUIRE_BROWSER"),
    reason="Debian chromium and chromium-driver are not installed")


@pytest.fixture(scope="module")
def synced(airflow_db, db_uris, tmp_path_factory):
    """The demo's flow at SF 0.01 through dag.test(); returns the broken order's key and the reports root."""
    reports = tmp_path_factory.mktemp("reports")
    os.environ["WAREHOUSE_SYNC_REPORTS_ROOT"] = f"file://{reports}"
    os.environ["WAREHOUSE_SYNC_STAGING_ROOT"] = f"file://{tmp_path_factory.mktemp('staging')}"
    os.environ.pop("WAREHOUSE_SYNC_CONFIG", None)  # the shipped include/pipelines.yaml, with its expectations
    anchor = runner.window_with_time_left()  # the broken row, written now, falls in the last window
    source = connect_uri(db_uris[SOURCE_CONN_ID])
    warehouse = connect_uri(db_uris[WAREHOUSE_CONN_ID])
    warehouse.execute("DROP SCHEMA IF EXISTS tpch CASCADE; DROP SCHEMA IF EXISTS warehouse_sync CASCADE")
    warehouse.commit()
    data = tpch.generate(0.01)
    tpch.seed(source, data, anchor)
    dags = runner.load_dags()
    states = {}
    for name in ("sync_tpch_orders", "sync_tpch_lineitem"):
        runner.run_window(dags[name], anchor - runner.WINDOW, {"full_snapshot": True})
        runner.run_window(dags[name], anchor)
    tpch.apply_workload(source, data, refresh_set=1, deletes=True)
    broken = tpch.insert_broken_order(source)
    for name in ("sync_tpch_orders", "sync_tpch_lineitem"):
        states[name] = runner.task_states(runner.run_window(dags[name], anchor + runner.WINDOW))
    source.close()
    warehouse.close()
    yield {"broken": broken, "reports": reports, "states": states}
    os.environ.pop("WAREHOUSE_SYNC_REPORTS_ROOT", None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api_server(synced, db_uris, tmp_path_factory):
    """``airflow api-server`` with the plugin, the test warehouse and one signed-in-able analyst."""
    home = Path(os.environ["AIRFLOW_HOME"])
    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    port = _free_port()
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    log = (home / f"api-server-{port}.log").open("w")
    process = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "api-server", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None:
                    raise RuntimeError(f"api-server exited: {(home / f'api-server-{port}.log').read_text()[-3000:]}")
                time.sleep(1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _token(base: str) -> str:
    request = urllib.request.Request(f"{base}/auth/token", data=json.dumps({"username": USER, "password": PASSWORD})
                                     .encode(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=30))["access_token"]


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
        return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_broken_order_fails_only_the_validate_task_of_its_run(synced):
    orders = synced["states"]["sync_tpch_orders"]
    assert orders["validate"] == "failed" and orders["reconcile"] == "success" and orders["load"] == "success"
    assert set(synced["states"]["sync_tpch_lineitem"].values()) == {"success"}


def test_an_anonymous_request_gets_no_data(api_server):
    status, body = _get(f"{api_server}/data-quality/")
    assert status == 401 and "Sign in" in body and "tpch.orders" not in body
    status, body = _get(f"{api_server}/data-quality/docs/tpch_orders/index.html")
    assert status == 401 and "<table" not in body


def test_the_page_is_an_entry_in_the_airflow_menu(api_server):
    status, body = _get(f"{api_server}/api/v2/plugins", _token(api_server))
    views = [v for p in json.loads(body)["plugins"] for v in p["external_views"]]
    assert status == 200 and {"name": "Data quality", "href": "data-quality/", "destination": "nav"}.items() <= \
        next(v for v in views if v["name"] == "Data quality").items()


@needs_chromium
def test_the_page_shows_both_tables_and_the_broken_row_in_a_real_browser(api_server, synced):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,2200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"{api_server}/data-quality/")
        assert "Sign in to Airflow" in driver.find_element(By.TAG_NAME, "body").text  # the browser too
        driver.add_cookie({"name": "_token", "value": _token(api_server), "path": "/"})
        driver.get(f"{api_server}/data-quality/")
        text = driver.find_element(By.TAG_NAME, "body").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "data_quality_page.png"))
        assert "tpch.orders" in text and "tpch.lineitem" in text
        failed = [row.text for row in driver.find_elements(By.CSS_SELECTOR,
                                                           "section#tpch_orders table.expectations tr.failed")]
        assert any("order status is O, F or P" in row and f"o_orderkey {synced['broken']}" in row
                   for row in failed), failed
        assert any("total price is not negative" in row for row in failed), failed
        runs = driver.find_elements(By.CSS_SELECTOR, "section#tpch_lineitem table.runs tbody tr")
        assert len(runs) == 3 and "all " in runs[0].text and "expectations passed" in runs[0].text
        assert driver.find_elements(By.CSS_SELECTOR, "section#tpch_orders svg.chart rect")
        driver.get(f"{api_server}/plugin/data-quality")  # the menu entry's view: the page inside the Airflow UI
        frame = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "iframe"))
        assert "data-quality" in frame.get_attribute("src")
        driver.switch_to.frame(frame)
        WebDriverWait(driver, 60).until(lambda d: "tpch.lineitem" in d.find_element(By.TAG_NAME, "body").text)
        driver.switch_to.default_content()
        driver.save_screenshot(str(ARTIFACTS / "data_quality_in_airflow_ui.png"))
        driver.get(f"{api_server}/data-quality/")
        docs = driver.find_element(By.PARTIAL_LINK_TEXT, "Data Docs")
        driver.get(docs.get_attribute("href"))
        assert "o_orderstatus" in driver.find_element(By.TAG_NAME, "body").text
        # served sandboxed: an opaque origin, so a script there has no Airflow cookie to use
        origin = driver.execute_script("try { document.cookie; return 'readable'; } catch (e) { return e.name; }")
        assert origin == "SecurityError", origin
        driver.save_screenshot(str(ARTIFACTS / "data_docs.png"))
    finally:
        driver.quit()
