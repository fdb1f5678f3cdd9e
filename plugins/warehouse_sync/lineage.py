"""OpenLineage: the datasets a sync run reads and writes, for the OpenLineage provider's listener.

With ``apache-airflow-providers-openlineage`` installed and a transport configured (``[openlineage]
transport``, e.g. ``{"type": "http", "url": ...}`` or ``{"type": "file", ...}``), Airflow emits an
OpenLineage event at each task's start and end. A TaskFlow task has no extractor of its own, so the
DAG's ``load`` and ``validate`` tasks hand theirs over (:func:`report_load`, :func:`quality_reporter`),
which gives the running operator a ``get_openlineage_facets_on_complete`` method: the provider's
``DefaultExtractor`` calls it when the task ends (also when it fails).

Datasets follow OpenLineage's PostgreSQL naming (openlineage.io/docs/spec/naming): namespace
``postgres://{host}:{port}``, name ``{database}.{schema}.{table}``, read from the open connection
(never the Airflow connection's password). Facets:

* ``load``: input = the source table, output = the target table, both with a ``schema`` facet
  (column names and PostgreSQL types); the input with ``inputStatistics`` (rows staged), the output
  with ``outputStatistics`` (rows merged, bytes of the staged files read).
* ``validate``: input = the target table with ``dataQualityAssertions`` (one assertion per
  expectation: its name, column, success) and ``dataQualityMetrics`` (rows of the window checked).

Without the provider or a transport (:func:`enabled`) nothing is read or built; with them, the
load reads the two tables' column lists (one catalog query each) and the facets are built when the
listener asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import psycopg

from warehouse_sync.db.statements import load_sql
from warehouse_sync.model import Loaded, TableRef
from warehouse_sync.run import Run

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

# The column list of a table: (name, type) in column order.
Columns = Sequence[tuple[str, str]]


def namespace(conn: psycopg.Connection) -> str:
    """The OpenLineage namespace of the server a connection is open on: ``postgres://host:port``."""
    return f"postgres://{conn.info.host}:{conn.info.port}"


def dataset_name(conn: psycopg.Connection, table: TableRef) -> str:
    """The OpenLineage dataset name of a table: ``database.schema.table``."""
    return f"{conn.info.dbname}.{table.schema}.{table.name}"


def columns_of(conn: psycopg.Connection, table: TableRef) -> list[tuple[str, str]]:
    """The table's columns as ``(name, type)`` (PostgreSQL's ``format_type``), in column order; none if missing."""
    rows = conn.execute(load_sql("catalog/column_types.sql"), {"table": f"{table.schema}.{table.name}"}).fetchall()
    conn.commit()
    return [(str(name), str(kind)) for name, kind in rows]


def _schema_facet(columns: Columns) -> Any:
    from openlineage.client.facet_v2 import schema_dataset

    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=name, type=kind) for name, kind in columns])


def load_lineage(source: psycopg.Connection, warehouse: psycopg.Connection, source_table: TableRef,
                 target_table: TableRef, loaded: Loaded) -> Callable[[], OperatorLineage]:
    """The lineage of a load: source table in, target table out, with schemas and row counts.

    Reads both tables' column lists now (one catalog query each), so that the returned builder needs
    no connection when the listener calls it after the task.

    Args:
        source: Source connection (open).
        warehouse: Warehouse connection (open).
        source_table: The pipeline's source table.
        target_table: The pipeline's target table.
        loaded: The load's result (``staged`` rows, ``merged`` rows, ``bytes`` of staged files).

    Returns:
        A function building the ``OperatorLineage`` (inputs, outputs).
    """
    source_ns, source_name, source_columns = namespace(source), dataset_name(source, source_table), \
        columns_of(source, source_table)
    target_ns, target_name, target_columns = namespace(warehouse), dataset_name(warehouse, target_table), \
        columns_of(warehouse, target_table)

    def build() -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import input_statistics_input_dataset, output_statistics_output_dataset

        read = InputDataset(
            namespace=source_ns, name=source_name, facets={"schema": _schema_facet(source_columns)},
            inputFacets={"inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=loaded.staged, size=loaded.bytes, fileCount=loaded.files)})
        written = OutputDataset(
            namespace=target_ns, name=target_name, facets={"schema": _schema_facet(target_columns)},
            outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=loaded.merged, size=loaded.bytes, fileCount=loaded.files)})
        return OperatorLineage(inputs=[read], outputs=[written])

    return build


def quality_lineage(warehouse: psycopg.Connection, target_table: TableRef,
                    assertions: Sequence[dict[str, Any]], rows: int | None) -> Callable[[], OperatorLineage]:
    """The lineage of a validate: the target table as input, with the data-quality outcome.

    Args:
        warehouse: Warehouse connection (open).
        target_table: The pipeline's target table.
        assertions: One per expectation: ``{"assertion": "expect_…", "column": str | None, "success": bool,
            "severity": "fail" | "warn", "name": label}``.
        rows: Rows of the window checked (``None``: not known).

    Returns:
        A function building the ``OperatorLineage`` (inputs only).
    """
    ns, name = namespace(warehouse), dataset_name(warehouse, target_table)

    def build() -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset
        from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
        from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as metrics

        checked = InputDataset(namespace=ns, name=name, inputFacets={
            "dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(
                assertions=[dq.Assertion(assertion=a["assertion"], success=bool(a["success"]), column=a.get("column"),
                                         severity=a.get("severity"), name=a.get("name")) for a in assertions]),
            "dataQualityMetrics": metrics.DataQualityMetricsInputDatasetFacet(columnMetrics={}, rowCount=rows)})
        return OperatorLineage(inputs=[checked])

    return build


def enabled() -> bool:
    """Whether the OpenLineage provider is installed and has a transport (``[openlineage]`` settings)."""
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    return not is_disabled()


def report_load(task: Any, run: Run, loaded: Loaded) -> None:
    """Reports a load's lineage (:func:`load_lineage`) for the task's end event; nothing when not :func:`enabled`."""
    if enabled():
        report(task, load_lineage(run.source, run.warehouse, run.pipeline.source, run.pipeline.target, loaded))


def quality_reporter(task: Any, warehouse: psycopg.Connection,
                     target_table: TableRef) -> Callable[[dict[str, Any]], None] | None:
    """A validate's ``on_summary`` callback reporting :func:`quality_lineage`; ``None`` when not :func:`enabled`."""
    if not enabled():
        return None

    def on_summary(summary: dict[str, Any]) -> None:
        report(task, quality_lineage(warehouse, target_table, summary.get("assertions", []), summary.get("rows")))

    return on_summary


def report(task: Any, lineage: Callable[[], OperatorLineage]) -> None:
    """Hands a task's lineage to the OpenLineage listener (its ``DefaultExtractor``), for the task's end event.

    Args:
        task: The running operator (the task context's ``task``).
        lineage: Builds the ``OperatorLineage`` when the listener asks (after the task, in its process).
    """
    task.get_openlineage_facets_on_complete = lambda task_instance: lineage()
