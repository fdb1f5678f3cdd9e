"""The Airflow pools named by the pipelines' ``extract_pool``: an optional deployment step.

By default a pipeline's extract tasks run in Airflow's ``default_pool``, which every deployment has,
and a run reads its source with at most ``extract_pool_slots`` extracts at once
(``max_active_tis_per_dagrun``): nothing to set up. A pipeline that names ``extract_pool`` (e.g.
``extract_crm``, shared by every pipeline on one OLTP database) is bounded across runs, backfills and
pipelines too, by that pool's slots: the largest ``extract_pool_slots`` any of its pipelines gives.

Airflow schedules no task of a pool that does not exist (it shows a "non-existent pool" DAG
warning), and a task cannot create one (Airflow 3's tasks reach the metadata database only through
the Task SDK's execution API, which has no pool call). So a named pool is created once, and after
each change of the pipeline file, e.g. in the init step of ``docker-compose.yaml``::

    python -m warehouse_sync.config.pools include/pipelines.yaml > /tmp/pools.json
    airflow pools import /tmp/pools.json

(``airflow pools import`` creates or updates, so it is idempotent; with no named pool the file is
``{}`` and the import changes nothing.) ``airflow pools set extract_crm 4 "..."`` does the same by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

from warehouse_sync.config.pipeline import Pipeline


def extract_pools(pipelines: Iterable[Pipeline]) -> dict[str, int]:
    """Slots per named extract pool: ``{extract_pool: slots}``, the largest a pipeline asks for.

    Pipelines without ``extract_pool`` (in ``default_pool``) need none and are left out.
    """
    pools: dict[str, int] = {}
    for pipeline in pipelines:
        if pipeline.extract_pool is not None:
            pools[pipeline.extract_pool] = max(pools.get(pipeline.extract_pool, 0), pipeline.extract_pool_slots)
    return pools


def pools_file(pipelines: Iterable[Pipeline]) -> dict[str, dict]:
    """The pools in the JSON shape ``airflow pools import`` reads.

    The shape: ``{name: {slots, description, include_deferred}}``.
    """
    return {name: {"slots": slots, "description": f"warehouse-sync extracts ({name})",
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
