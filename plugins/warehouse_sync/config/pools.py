"""The Airflow pools the pipelines' extract tasks run in: one per source connection.

Every extract task of a pipeline runs in the pool ``extract_<source_conn_id>``
(:attr:`Pipeline.extract_pool`), so the mapped extracts of all runs and pipelines reading one source
share its slots: a fan-out of many batches, a backfill of many windows or several pipelines on one
OLTP database never hold more than ``extract_pool_slots`` of its connections at once (pipelines
sharing a source: the largest value any of them gives).

Airflow schedules no task of a pool that does not exist, and a task cannot create one (Airflow 3's
tasks reach the metadata database only through the Task SDK's execution API, which has no pool
call). So the pools are part of the deployment, created once and after each change of the pipeline
file, e.g. in the init step of ``docker-compose.yaml``::

    python -m warehouse_sync.config.pools include/pipelines.yaml > /tmp/pools.json
    airflow pools import /tmp/pools.json

(``airflow pools import`` creates or updates, so it is idempotent.) ``airflow pools set
extract_source_postgres 4 "..."`` does the same by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

from warehouse_sync.config.pipeline import Pipeline


def extract_pools(pipelines: Iterable[Pipeline]) -> dict[str, int]:
    """Slots per extract pool name: ``{"extract_<source_conn_id>": slots}``, the largest a pipeline asks for."""
    pools: dict[str, int] = {}
    for pipeline in pipelines:
        pools[pipeline.extract_pool] = max(pools.get(pipeline.extract_pool, 0), pipeline.extract_pool_slots)
    return pools


def pools_file(pipelines: Iterable[Pipeline]) -> dict[str, dict]:
    """The pools in the JSON shape ``airflow pools import`` reads.

    The shape: ``{name: {slots, description, include_deferred}}``.
    """
    return {name: {"slots": slots, "description": f"warehouse-sync extracts reading {name.removeprefix('extract_')}",
                   "include_deferred": False}
            for name, slots in sorted(extract_pools(pipelines).items())}


def main(argv: list[str] | None = None) -> int:
    """``python -m warehouse_sync.config.pools [pipeline file]``: prints the pools file.

    The pipeline file defaults to the configured one.
    """
    from warehouse_sync.config.load import load_config
    from warehouse_sync.storage import config_path

    args = sys.argv[1:] if argv is None else argv
    config = load_config(Path(args[0]) if args else config_path())
    print(json.dumps(pools_file(config.pipelines), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
