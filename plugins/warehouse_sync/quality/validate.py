"""Validate what a run loaded with Great Expectations 1.x; keep the results and the Data Docs.

The validate task of each sync run checks the window's live rows in the warehouse (``SELECT * FROM
target WHERE _deleted_at IS NULL AND cursor in [start, end)``) against the pipeline's expectation
suite (:mod:`.suite`: key not null and unique, the configured ``expectations``, the volume band).
Results go to ``warehouse_sync.dq_results`` (one row per expectation: success, observed value,
unexpected count and a sample of failing keys) and the run's Data Docs (GX's HTML) to
``<reports root>/data_docs/<pipeline>/<run>/``. A failed ``fail``-severity expectation raises
:class:`DataQualityFailed` after everything is recorded.

The standard key expectations (key not null, key unique) are decided by the target's PRIMARY KEY
constraint when it has one on exactly the key columns (every target the load creates does): the
database enforced them on every write, so they are recorded as passed ("enforced by the primary key
constraint") without a second check, which for a snapshot was a sort of the whole table.

Everything else runs inside PostgreSQL, and the task's memory does not grow with the window:

* An incremental window is a query asset whose rows GX's SQL execution engine first copies into a
  temporary table on the server (``create_temp_table``: one read of the window, written on the
  server, never fetched). Without it GX learns a query asset's columns by running the whole query
  and fetching every row into the task's process (measured: a 2 M-row window took the task to
  835 MiB peak RSS; with the temporary table 339 MiB, GX's own footprint).
* A snapshot's window, when it is the whole target (no soft-deleted row, no row past its end:
  :func:`whole_target`), is a table asset read where it is, with no copy.
* Every expectation is an aggregate GX bundles into few scans. The suite runs first for the counts
  alone: GX's failing-row sample queries then read ``LIMIT 0`` rows (with nothing unexpected, each
  would read the whole window to find none). Only the expectations that found unexpected rows run
  again for their samples (failing keys and values, ``LIMIT 20``).

Measured on a 6 M-row lineitem-shaped target (three expectations): 28 s with the temporary table
and samples, 7 s read in place with counts first.

The warehouse URL reaches GX by reference (``${WAREHOUSE_SYNC_GX_URL}``, resolved by GX's config
substitution from the context's runtime environment), so no credential is written into
``os.environ``, GX's configuration, its logs or its Data Docs. Validation writes no DDL: the
target's cursor index, which the window query needs, is created by the load.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, cast

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from warehouse_sync.config import Expectation, Pipeline
from warehouse_sync.db.catalog import primary_key_of
from warehouse_sync.db.statements import end_value, load_sql, table_ident, window_filter
from warehouse_sync.model import TableRef, Window
from warehouse_sync.quality.suite import standard_expectations, suite_for
from warehouse_sync.storage import make_private, reports_root

log = logging.getLogger(__name__)
GX_URL_VAR = "WAREHOUSE_SYNC_GX_URL"  # a GX substitution variable of the context, never os.environ
VOLUME_HISTORY = 12
SAMPLE_ROWS = 20
# The rows a run validates: the live target rows whose cursor is in the run's window.
WINDOW_ROWS = sql.SQL("SELECT * FROM {table} AS r WHERE r._deleted_at IS NULL AND {window}")
DELETE_RUN = "DELETE FROM warehouse_sync.dq_results WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s"


class DataQualityFailed(RuntimeError):
    """At least one ``fail``-severity expectation failed.

    The message names table, window, each failed expectation with its unexpected count and sample keys.
    """


@dataclass(frozen=True)
class Outcome:
    """One expectation's result, as stored in ``warehouse_sync.dq_results``."""

    expectation: Expectation
    success: bool
    observed_value: str
    element_count: int | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[dict[str, Any]]

    def describe(self) -> str:
        """The expectation's title and observed value, with up to five sample keys."""
        keys = "; ".join(", ".join(f"{k}={v!r}" for k, v in row.items()) for row in self.sample[:5])
        return f"{self.expectation.title}: {self.observed_value}" + (f" (e.g. {keys})" if keys else "")


def docs_folder(pipeline: str, run_id: str) -> str:
    """The run's Data Docs folder under ``<reports root>/data_docs/`` (run id made path-safe)."""
    return f"{pipeline}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', run_id)}"


def window_query(conn: psycopg.Connection, pipeline: Pipeline, window: Window) -> str:
    """The window's rows as one SQL string (GX takes no bind parameters: psycopg quotes the values).

    GX copies its rows into a temporary table once (module docstring), so the query is never
    flattened into GX's metric queries and their ``LIMIT``: the planner sees the window alone and
    reads a small window through the cursor index, a snapshot by a sequential scan.

    Args:
        conn: Warehouse connection (quotes the window's bounds).
        pipeline: The table's configuration.
        window: The run's window.

    Returns:
        ``SELECT * FROM target AS r WHERE r._deleted_at IS NULL AND <cursor in window>``.
    """
    where, params = window_filter(pipeline.cursor, window, "r", pipeline.cursor_time_zone)
    query = WINDOW_ROWS.format(table=table_ident(pipeline.target), window=where)
    return psycopg.ClientCursor(conn).mogrify(query, params).strip()


def whole_target(warehouse: psycopg.Connection, pipeline: Pipeline, window: Window) -> bool:
    """Whether the window's live rows are every row of the target, so GX may read the target itself.

    True for a snapshot's window (``start`` ``None``) when the target holds no soft-deleted row and no
    row at or past the window end: what a snapshot's validate finds right after its load. Two index
    probes (``quality/whole_target.sql``). The window's rows are then validated where they are, with
    no copy into a temporary table (module docstring).
    """
    if not window.is_snapshot:
        return False
    query = load_sql("quality/whole_target.sql", table=table_ident(pipeline.target),
                     cursor=sql.Identifier(pipeline.cursor))
    (whole,) = warehouse.execute(query, {"window_end": end_value(window, pipeline.cursor_time_zone)}).fetchone()  # type: ignore[misc]
    warehouse.commit()
    return bool(whole)


def _enforced_by_primary_key(warehouse: psycopg.Connection, pipeline: Pipeline) -> dict[Expectation, Outcome]:
    """The standard key expectations the target's PRIMARY KEY constraint already guarantees, as passed outcomes.

    A primary key on exactly the pipeline's key columns makes them NOT NULL and unique among every row,
    so among the window's live rows too: the database enforced it on every write, and checking it again
    would cost a sort of the whole window (a snapshot: the whole table). Without such a constraint (a
    target created by hand with a unique index only), none is returned and GX evaluates them.
    """
    if primary_key_of(warehouse, pipeline.target) != tuple(pipeline.primary_key):
        return {}
    observed = f"enforced by the primary key constraint of {pipeline.target}"
    return {e: Outcome(e, True, observed, None, 0, 0.0, []) for e in standard_expectations(pipeline.primary_key)}


def _outcome(expectation: Expectation, result: dict[str, Any]) -> Outcome:
    """Reads one GX ``ExpectationValidationResult`` (as a JSON dict)."""
    body = result.get("result") or {}
    error = (result.get("exception_info") or {}).get("exception_message")
    if error:
        return Outcome(expectation, False, f"could not be evaluated: {error}", None, None, None, [])
    if "observed_value" in body and "unexpected_count" not in body:
        observed = body["observed_value"]
        return Outcome(expectation, bool(result["success"]), f"observed {observed}",
                       observed if isinstance(observed, int) else None, None, None, [])
    count, unexpected = body.get("element_count"), body.get("unexpected_count") or 0
    sample = [{k: _plain(v) for k, v in row.items()} for row in (body.get("partial_unexpected_index_list") or [])]
    return Outcome(expectation, bool(result["success"]), f"{unexpected:,} of {count:,} rows unexpected", count,
                   unexpected, body.get("unexpected_percent"), sample[:SAMPLE_ROWS])


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def run_expectations(url: str, rows: str | TableRef, suite_name: str, expectations: list[Expectation],
                     key: list[str], docs_dir: Path) -> list[Outcome]:
    """Runs ``expectations`` on ``rows`` with Great Expectations and writes its Data Docs.

    Args:
        url: SQLAlchemy URL of the warehouse (``postgresql+psycopg://…``); passed to GX by reference.
        rows: SQL of the rows to validate (a query asset, copied into a temporary table on the server
            first), or a table whose every row is validated where it is (a table asset: no copy).
        suite_name: Name of the suite (shown in the Data Docs).
        expectations: The expectations and their severities.
        key: Primary-key columns, reported for every failing row.
        docs_dir: Local folder the Data Docs site is written to.

    Returns:
        One :class:`Outcome` per expectation, in order.
    """
    with warnings.catch_warnings():  # GX's deprecation and "use PostgresDatasource" warnings are noise here
        warnings.simplefilter("ignore")
        return _run_expectations(url, rows, suite_name, expectations, key, docs_dir)


def _run_expectations(url: str, rows: str | TableRef, suite_name: str, expectations: list[Expectation],
                      key: list[str], docs_dir: Path) -> list[Outcome]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral", runtime_environment={GX_URL_VAR: url})
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # a query's rows are copied on the server once (GX never fetches them to learn the columns); a table is read
    # where it is
    source = context.data_sources.add_sql(name="warehouse", connection_string="${" + GX_URL_VAR + "}",
                                          create_temp_table=not isinstance(rows, TableRef))
    asset = (source.add_table_asset(name=suite_name, table_name=rows.name, schema_name=rows.schema)
             if isinstance(rows, TableRef) else source.add_query_asset(name=suite_name, query=rows))
    batch = asset.add_batch_definition_whole_table("window")
    context.add_data_docs_site(site_name="run", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    # Counts first, no samples: GX's sample queries then read LIMIT 0 rows, where with nothing unexpected
    # each would read the whole window to find none.
    counted = _checkpoint(context, batch, suite_name, list(enumerate(expectations)), key, 0)
    failing = [(i, e) for i, e in enumerate(expectations) if counted[i].unexpected_count]
    if failing:  # the failing rows' keys and values, for those expectations only
        counted.update(_checkpoint(context, batch, f"{suite_name} (failing rows)", failing, key, SAMPLE_ROWS))
    return [counted[i] for i in range(len(expectations))]


def _checkpoint(context: Any, batch: Any, name: str, expectations: list[tuple[int, Expectation]], key: list[str],
                samples: int) -> dict[int, Outcome]:
    """Runs one suite of ``(index, expectation)`` on the batch, updating the Data Docs; outcomes by index."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for index, expectation in expectations:
        suite.add_expectation(getattr(gxe, expectation.class_name)(
            **expectation.kwargs(),
            meta={"severity": expectation.severity, "label": expectation.label, "index": index}))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=name, validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["run"])],
        result_format={"result_format": "SUMMARY", "unexpected_index_column_names": key,
                       "partial_unexpected_count": samples},
    ))
    (validation,) = checkpoint.run().run_results.values()
    by_index = {}
    for r in validation.results:  # GX orders results its own way: match them by the index in meta
        raw = cast(dict[str, Any], r.to_json_dict())
        by_index[raw["expectation_config"]["meta"]["index"]] = raw
    return {i: _outcome(expectation, by_index[i]) for i, expectation in expectations}


def validate(warehouse: psycopg.Connection, url: str, pipeline: Pipeline, window: Window, run_id: str,
             dag_id: str, on_summary: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Validates a run's window, records the results and publishes the Data Docs.

    Args:
        warehouse: Warehouse connection (results are written here).
        url: SQLAlchemy URL of the same warehouse, for GX.
        pipeline: The table's configuration.
        window: The run's window (``start=None`` for a full snapshot: the volume band is not judged).
        run_id: Airflow run id (a retry replaces its own rows).
        dag_id: The run's DAG.
        on_summary: Called with the summary once the results are saved, before a failure is raised
            (the DAG reports it as the run's data-quality lineage).

    Returns:
        ``{"expectations": n, "failed": [labels], "warned": [labels], "docs": path, "seconds": s,
        "rows": rows of the window checked | None, "assertions": [{"assertion", "success", "column",
        "severity", "name"}, ...]}`` (the assertions are the data-quality facet of :mod:`warehouse_sync.lineage`).

    Raises:
        DataQualityFailed: A ``fail``-severity expectation failed (after results and docs are saved).
    """
    started = time.monotonic()
    history = [r[0] for r in warehouse.execute(load_sql("quality/volume_history.sql"), {
        "pipeline": pipeline.name, "run_id": run_id, "limit": VOLUME_HISTORY}).fetchall()]
    expectations = suite_for(pipeline, history if window.start is not None else [])
    rows = pipeline.target if whole_target(warehouse, pipeline, window) else window_query(warehouse, pipeline, window)
    enforced = _enforced_by_primary_key(warehouse, pipeline)
    warehouse.commit()
    folder = docs_folder(pipeline.name, run_id)
    with tempfile.TemporaryDirectory(prefix="ws-docs-") as tmp:
        evaluated = run_expectations(url, rows, pipeline.name, [e for e in expectations if e not in enforced],
                                     list(pipeline.primary_key), Path(tmp))
        docs_page = _publish_docs(Path(tmp), folder)
    by_expectation = dict(zip([e for e in expectations if e not in enforced], evaluated))
    outcomes = [by_expectation.get(e) or enforced[e] for e in expectations]
    with warehouse.transaction():
        # a retried validate replaces its own rows
        warehouse.execute(DELETE_RUN, {"pipeline": pipeline.name, "run_id": run_id})
        for outcome in outcomes:
            warehouse.execute(load_sql("quality/insert.sql"), {
                "pipeline": pipeline.name, "dag_id": dag_id, "run_id": run_id, "window_start": window.start,
                "window_end": window.end, "expectation": f"expect_{outcome.expectation.expect}",
                "label": outcome.expectation.title, "columns": outcome.expectation.columns,
                "severity": outcome.expectation.severity, "success": outcome.success,
                "observed_value": outcome.observed_value, "element_count": outcome.element_count,
                "unexpected_count": outcome.unexpected_count, "unexpected_percent": outcome.unexpected_percent,
                "sample": Jsonb(outcome.sample), "docs_path": docs_page,
            })
    failed = [o for o in outcomes if not o.success and o.expectation.severity == "fail"]
    warned = [o for o in outcomes if not o.success and o.expectation.severity == "warn"]
    summary = {"expectations": len(outcomes), "failed": [o.describe() for o in failed],
               "warned": [o.describe() for o in warned], "docs": docs_page,
               "seconds": round(time.monotonic() - started, 2),
               "rows": max((o.element_count for o in outcomes if o.element_count is not None), default=None),
               "assertions": [{"assertion": f"expect_{o.expectation.expect}", "success": o.success,
                               "column": o.expectation.columns, "severity": o.expectation.severity,
                               "name": o.expectation.title} for o in outcomes]}
    log.info("%s %s: %s", pipeline.target, window, json.dumps({k: v for k, v in summary.items() if k != "assertions"}))
    if on_summary is not None:
        on_summary(summary)
    if failed:
        raise DataQualityFailed(
            f"data quality of {pipeline.target} window {window}: {len(failed)} of {len(outcomes)} expectations failed: "
            + " | ".join(o.describe() for o in failed) + f". Data Docs: {docs_page}")
    return summary


def _publish_docs(local: Path, folder: str) -> str | None:
    """Copies the local Data Docs site to ``<reports root>/data_docs/<folder>/``.

    On a local reports root its files are owner-only (``0600``) and their folders ``0700``.

    Returns:
        The validation page, relative to ``<reports root>/data_docs`` (``None`` if GX wrote none): the
        failing rows' page when expectations found some (:func:`run_expectations`), else the counts' page.
    """
    pages = sorted(local.glob("validations/**/*.html"), key=lambda p: ("failing" not in str(p), str(p)))
    target = reports_root() / "data_docs" / folder
    if target.exists():
        target.rmdir(recursive=True)  # a retry replaces its own run's pages
    for path in local.rglob("*"):
        if path.is_file():
            destination = target / str(path.relative_to(local))
            destination.parent.mkdir(parents=True, exist_ok=True)
            make_private(destination.parent, folder=True)  # the pages show failing source values
            with path.open("rb") as src, destination.open("wb") as dst:
                make_private(destination)
                shutil.copyfileobj(src, dst)
    return f"{folder}/{pages[0].relative_to(local)}" if pages else None
