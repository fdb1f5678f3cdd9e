"""``make reconcile TABLE=schema.table``: the daily whole-table reconcile, run now through Airflow.

Uses the connections in the environment (``AIRFLOW_CONN_*``) or the embedded PostgreSQL, runs the
``reconcile_<name>`` DAG with ``dag.test()``, prints what it found and repaired, and exits 1 when
drift remains (or the repair was refused).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime, timezone

from devkit import airflow_local as runner
from devkit.embedded import ENV_VARS, ensure_connections
from devkit.paths import CONFIG
from warehouse_sync.config import ConfigError, load_config
from warehouse_sync.db.connections import WAREHOUSE_CONN_ID, connect_uri

LATEST_DRIFT = """
SELECT scope, as_of, segments, missing, extra, changed, repaired, refused, round(seconds::numeric, 2), sample
FROM warehouse_sync.drift_history WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s ORDER BY id
"""


def reconcile_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="pipeline name, or its source or target table (schema.table)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    try:
        pipeline = load_config(CONFIG).pipeline(args.table)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    env = ensure_connections()
    runner.airflow_environment()
    runner.migrate_metadata_db()
    dag_run = runner.run_window(runner.load_dags()[f"reconcile_{pipeline.name}"], datetime.now(timezone.utc))
    warehouse = connect_uri(env[ENV_VARS[WAREHOUSE_CONN_ID]], WAREHOUSE_CONN_ID)
    rows = warehouse.execute(LATEST_DRIFT, {"pipeline": pipeline.name, "run_id": dag_run.run_id}).fetchall()
    for scope, as_of, segments, missing, extra, changed, repaired, refused, seconds, sample in rows:
        print(f"{pipeline.target} vs {pipeline.source} ({scope}, rows with cursor < {as_of:%Y-%m-%d %H:%M:%S} UTC): "
              f"{segments} segments compared in {seconds} s")
        print(f"  missing {missing}, extra (deleted at source) {extra}, changed {changed}; "
              f"{'REPAIR REFUSED' if refused else f'repaired {repaired} rows'}")
        for kind in ("missing", "extra"):
            if sample.get(f"sample_{kind}"):
                print(f"  sample {kind}: {json.dumps(sample[f'sample_{kind}'])}")
        if sample.get("sample_changed"):
            print(f"  sample changed (key: columns): {json.dumps(sample['sample_changed'])}")
    state = str(dag_run.state)
    print(f"reconcile_{pipeline.name}: {state}")
    if state != "success":
        print(f"drift remains or the reconcile failed: {runner.task_states(dag_run)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(reconcile_main())
