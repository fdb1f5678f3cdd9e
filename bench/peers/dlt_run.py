"""One dlt run (in dlt's own virtualenv): a TPC-H table from the source into the warehouse.

Used by ``bench/sync_bench.py``; prints one JSON line ``{"seconds", "rows", "peak_rss_mib"}``. The
source is dlt's ``sql_table`` with an incremental cursor on ``updated_at`` and ``write_disposition
= "merge"`` on the table's primary key, the way dlt's docs set up an incremental database sync.
State lives in ``--pipelines-dir``, so a second call with the same directory is an incremental run.
"""

from __future__ import annotations

import argparse
import json
import time

import dlt
from dlt.sources.sql_database import sql_table


def _credentials(url: str) -> dict:
    """dlt's PostgresCredentials need a host and a password: a Unix-socket directory is a valid libpq
    host, and a trust-auth server ignores the password."""
    from urllib.parse import parse_qs, quote, unquote, urlsplit

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return {"database": parts.path.lstrip("/"), "username": unquote(parts.username or "postgres"),
            "password": unquote(parts.password or "") or "unused",
            "host": quote(query["host"][0], safe="") if "host" in query else parts.hostname,  # libpq decodes it
            "port": parts.port or 5432}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-url", required=True, help="SQLAlchemy URL of the source")
    parser.add_argument("--dest-url", required=True, help="libpq URL of the warehouse")
    parser.add_argument("--schema", default="tpch")
    parser.add_argument("--table", required=True)
    parser.add_argument("--primary-key", required=True, help="comma-separated")
    parser.add_argument("--backend", default="pyarrow", choices=["pyarrow", "connectorx", "sqlalchemy", "pandas"])
    parser.add_argument("--dataset", default="bench_dlt")
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    args = parser.parse_args()

    resource_ = sql_table(
        credentials=args.source_url, schema=args.schema, table=args.table, backend=args.backend,
        chunk_size=args.chunk_size, incremental=dlt.sources.incremental("updated_at"),
        **({"backend_kwargs": {"conn": args.source_url.replace("postgresql+psycopg2", "postgresql")
                                                     .replace("@/", "@localhost/")}}
           if args.backend == "connectorx" else {}),
    )
    resource_.apply_hints(primary_key=args.primary_key.split(","), write_disposition="merge")
    pipeline = dlt.pipeline(pipeline_name=f"bench_{args.table}",
                            destination=dlt.destinations.postgres(_credentials(args.dest_url)),
                            dataset_name=args.dataset, pipelines_dir=args.pipelines_dir)
    started = time.perf_counter()
    pipeline.run(resource_)
    seconds = time.perf_counter() - started
    rows = sum(pipeline.last_trace.last_normalize_info.row_counts.get(t, 0) for t in (args.table,))
    with open("/proc/self/status") as status:  # this process's own high-water mark (not its parent's)
        peak = int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mib": round(peak, 1)}))


if __name__ == "__main__":
    main()
