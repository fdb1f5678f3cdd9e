"""One run of one pipeline: what every step of either mode takes instead of a clump of parameters.

A :class:`Run` holds the pipeline, both open connections, always named ``source`` and ``warehouse``,
and the Airflow run id. :func:`opened` opens both from the pipeline's Airflow Connections for a
task; tests and benchmarks build a ``Run`` around connections of their own. :meth:`Run.record`
writes the step's audit row (:mod:`warehouse_sync.bookkeeping.audit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from warehouse_sync.bookkeeping import audit
from warehouse_sync.config import Pipeline
from warehouse_sync.model import Window


@dataclass(frozen=True)
class Run:
    """A pipeline's run: its configuration, its two connections and its Airflow run id.

    Attributes:
        pipeline: The table's configuration.
        source: Connection to the source database (the OLTP table).
        warehouse: Connection to the warehouse (target table, staging, bookkeeping).
        run_id: The Airflow run id (stored in ``_run_id``, the audit rows, the build table's comment).
    """

    pipeline: Pipeline
    source: psycopg.Connection
    warehouse: psycopg.Connection
    run_id: str

    def record(self, step: str, window: Window, *, status: str = "ok", rows: int = 0, bytes_: int = 0,
               seconds: float = 0.0, batch_index: int | None = None, detail: dict[str, Any] | None = None) -> None:
        """Appends the step's audit row in the warehouse and commits it (:func:`audit.record`)."""
        audit.record(self.warehouse, self.pipeline.name, self.run_id, step, window, status=status, rows=rows,
                     bytes_=bytes_, seconds=seconds, batch_index=batch_index, detail=detail)


@contextmanager
def opened(pipeline: Pipeline, run_id: str) -> Iterator[Run]:
    """``with opened(pipeline, run_id) as run:`` the pipeline's source and warehouse Connections, always closed.

    See :func:`warehouse_sync.db.connections.source_and_warehouse` for the session timeouts.

    Raises:
        DatabaseUnavailable: A server cannot be reached (the message names it, never its password).
    """
    from warehouse_sync.db.connections import source_and_warehouse

    with source_and_warehouse(pipeline) as (source, warehouse):
        yield Run(pipeline, source, warehouse, run_id)
