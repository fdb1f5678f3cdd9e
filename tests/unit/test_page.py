"""The "Data quality" page rendered from hand-made views (what ``collect`` would read): no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from warehouse_sync.config import Pipeline
from warehouse_sync.model import TableRef
from warehouse_sync.quality.page import RunView, TableView, chart, render

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
ORDERS = Pipeline(name="tpch_orders", source=TableRef("tpch", "orders"), target=TableRef("dw", "orders"),
                  primary_key=("o_orderkey",), cursor="updated_at")
LINES = Pipeline(name="tpch_lineitem", source=TableRef("tpch", "lineitem"), target=TableRef("dw", "lineitem"),
                 primary_key=("l_orderkey", "l_linenumber"), cursor="updated_at")


def orders_view() -> TableView:
    return TableView(
        ORDERS,
        runs=[RunView("scheduled__2026-11-20T02:00:00+00:00", "sync_tpch_orders", "2026-11-20 00:00 – 02:00 UTC",
                      1234567, "drift repaired: 1 missing, 0 deleted at source, 0 changed; 1 rows repaired",
                      "1 of 5 expectations failed", True, "plan 0.4 · extract 3.1 · load 1.2"),
              RunView("manual__1", "sync_tpch_orders", "everything before 2026-11-20 00:00 UTC (snapshot)", 15000,
                      "in sync", "all 5 expectations passed", False)],
        expectations=[{"label": "order status is O, F or P", "columns": "o_orderstatus", "severity": "fail",
                 "success": False, "observed": "1 of 200 rows unexpected", "unexpected": 1,
                 "sample": "o_orderkey 6000001 (o_orderstatus: X)"},
                {"label": "total price <b>not</b> negative", "columns": "o_totalprice", "severity": "warn",
                 "success": False, "observed": "2 rows", "unexpected": 2, "sample": ""},
                {"label": "primary key is unique", "columns": "o_orderkey", "severity": "fail", "success": True,
                 "observed": "0 rows", "unexpected": 0, "sample": ""}],
        expectations_window="2026-11-20 00:00 – 02:00 UTC",
        docs_path="tpch_orders/scheduled__2026-11-20T02_00_00_00_00/index.html",
        trend=[(T0, 100), (T0 + timedelta(hours=2), 400), (T0 + timedelta(hours=4), 0)],
    )


@pytest.fixture(scope="module")
def page() -> str:
    return render([orders_view(), TableView(LINES)], base="/airflow")


def test_each_table_is_a_section_named_by_its_target_and_source(page):
    assert '<section class="table" id="tpch_orders">' in page and '<section class="table" id="tpch_lineitem">' in page
    assert "dw.orders" in page and "from source tpch.orders" in page


def test_a_failed_fail_expectation_is_a_failed_row_with_its_sample_keys_and_a_warning_is_a_warned_row(page):
    assert '<tr class="failed">' in page and '<tr class="warned">' in page and '<tr class="passed">' in page
    failed = page.split('<tr class="failed">', 1)[1].split("</tr>", 1)[0]
    assert "FAILED" in failed and "order status is O, F or P" in failed and "o_orderkey 6000001" in failed
    assert "stops the run" in failed
    warned = page.split('<tr class="warned">', 1)[1].split("</tr>", 1)[0]
    assert "warning" in warned and "reported only" in warned


def test_each_run_shows_the_seconds_of_its_plan_extract_and_load(page):
    runs = page.split('<table class="runs">', 1)[1].split("</table>", 1)[0]
    assert "<th>Time (s)</th>" in runs and "<td>plan 0.4 · extract 3.1 · load 1.2</td>" in runs


def test_values_are_html_escaped(page):
    assert "total price &lt;b&gt;not&lt;/b&gt; negative" in page and "<b>not</b>" not in page


def test_runs_link_to_their_airflow_run_and_docs_under_the_base_url(page):
    assert 'href="/airflow/dags/sync_tpch_orders/runs/scheduled__2026-11-20T02%3A00%3A00%2B00%3A00"' in page
    assert 'href="/airflow/data-quality/docs/tpch_orders/scheduled__2026-11-20T02_00_00_00_00/index.html"' in page
    assert "1,234,567" in page and "drift repaired: 1 missing" in page


def test_a_table_without_runs_says_which_dag_to_trigger(page):
    lines = page.split('id="tpch_lineitem"', 1)[1]
    assert "No runs yet" in lines and "<code>sync_tpch_lineitem</code>" in lines and "<table" not in lines


def test_the_trend_chart_has_one_bar_per_window(page):
    assert page.count("<rect ") == 3 and "(max 400 rows)" in page


def test_an_error_is_shown_instead_of_data():
    html = render([], error="the warehouse is unreachable <retry later>")
    assert '<p class="error">the warehouse is unreachable &lt;retry later&gt;</p>' in html
    assert "<section" not in html


def test_chart_bars_are_scaled_to_the_busiest_window():
    geometry = chart([(T0, 100), (T0 + timedelta(hours=2), 400), (T0 + timedelta(hours=4), 0)], width=300, height=120)
    bars = geometry["bars"]
    assert geometry["max"] == 400 and [b["h"] for b in bars] == [25.0, 100.0, 0.0]
    assert [b["y"] for b in bars] == [75.0, 0.0, 100.0]  # bars stand on the same baseline
    assert [b["x"] for b in bars] == [1.0, 101.0, 201.0] and {b["w"] for b in bars} == {98.0}
    assert bars[1]["title"] == "2026-11-20 02:00 UTC: 400 rows"
    assert (geometry["first"], geometry["last"]) == ("11-20 00:00", "11-20 04:00")


def test_a_chart_without_windows_has_no_bars_and_all_zero_windows_do_not_divide_by_zero():
    assert chart([]) == {"bars": [], "width": 560, "height": 120, "max": 0}
    assert [b["h"] for b in chart([(T0, 0), (T0 + timedelta(hours=2), 0)])["bars"]] == [0.0, 0.0]


def test_schema_changes_are_listed_with_types_policy_and_outcome_and_a_rejection_stands_out():
    from warehouse_sync.quality.page import schema_change_view

    rows = [(T0, "r2", "status", "incompatible", "text", "integer", "evolve", "rejected",
             "the types are not compatible"),
            (T0, "r1", "currency", "added", None, "character(3)", "evolve", "applied", "added <to> the target")]
    view = TableView(ORDERS, runs=orders_view().runs, schema_changes=[schema_change_view(r) for r in rows])
    assert view.schema_changes[0]["types"] == "text → integer" and view.schema_changes[1]["types"] == "character(3)"
    html = render([view])
    section = html[html.index("Source schema changes"):]
    assert '<tr class="failed">' in section and '<span class="bad">rejected</span>' in section
    assert "currency" in section and "added &lt;to&gt; the target" in section and "2026-11-20 00:00 UTC" in section


def test_a_table_without_schema_changes_has_no_schema_section(page):
    assert "Source schema changes" not in page
