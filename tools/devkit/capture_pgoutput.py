"""Captures real pgoutput messages as test data for the decoder's unit tests (``tests/unit/data``).

Runs against the embedded PostgreSQL (``wal_level = logical``): a table with every type the TPC-H
tables and the CDC tests use, a temporary slot, and one transaction each of: insert (NULLs, non-ASCII
text), update leaving a TOASTed value unchanged, update of the key, delete. Writes every message
``data`` of ``pg_logical_slot_get_binary_changes`` as 4-byte big-endian length + bytes.

``python -m devkit.capture_pgoutput [out-file]`` (default ``tests/unit/data/pgoutput_changes.bin``).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import psycopg

from devkit.embedded import ensure_connections
from devkit.paths import REPO

SETUP = """
DROP TABLE IF EXISTS public.capture_types;
CREATE TABLE public.capture_types (
    id         bigint        PRIMARY KEY,
    line       integer       NOT NULL,
    status     char(1),
    priority   char(15),
    price      numeric(15,2),
    day        date,
    comment    varchar(79),
    body       text,
    flag       boolean,
    ratio      double precision,
    updated_at timestamptz   NOT NULL
);
DROP PUBLICATION IF EXISTS capture_pub;
CREATE PUBLICATION capture_pub FOR TABLE public.capture_types WITH (publish = 'insert, update, delete');
"""
STEPS = [
    "INSERT INTO public.capture_types VALUES (1, 7, 'O', '1-URGENT', 1234.56, '1998-08-02', 'naïve café', "
    "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) i), true, 0.5, "
    "'2026-11-20 10:00:00.123456+00'), (2, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "'2026-11-20 10:00:01+00')",
    "UPDATE public.capture_types SET price = -0.01, status = 'F' WHERE id = 1",
    "UPDATE public.capture_types SET id = 3 WHERE id = 2",
    "DELETE FROM public.capture_types WHERE id = 1",
]


def capture(uri: str, out: Path) -> int:
    """Runs the steps and writes the messages to ``out``; returns how many."""
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(SETUP)
        conn.execute("SELECT pg_create_logical_replication_slot('capture_slot', 'pgoutput', true)")
        for step in STEPS:
            conn.execute(step)
        rows = conn.execute("SELECT data FROM pg_logical_slot_get_binary_changes('capture_slot', NULL, NULL, "
                            "'proto_version', '1', 'publication_names', 'capture_pub')").fetchall()
        conn.execute("DROP PUBLICATION capture_pub; DROP TABLE public.capture_types")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(struct.pack(">I", len(d)) + bytes(d) for (d,) in rows))
    return len(rows)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests/unit/data/pgoutput_changes.bin"
    uri = ensure_connections()["AIRFLOW_CONN_SOURCE_POSTGRES"]
    print(f"{capture(uri, target)} messages written to {target}")
