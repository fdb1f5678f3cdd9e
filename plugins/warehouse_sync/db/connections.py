"""Database connections of the tasks: Airflow Connections through the Postgres provider's hook.

Secrets live only in the Airflow Connections ``source_postgres`` and ``warehouse_postgres`` (the
UI, ``AIRFLOW_CONN_*`` variables or any secrets backend). Nothing here writes a credential
anywhere: errors name the connection id and host, never a password. Every session runs in UTC with
ISO dates, which the catalog's types and the text keyset bounds rely on.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

import psycopg


SOURCE_CONN_ID = "source_postgres"
WAREHOUSE_CONN_ID = "warehouse_postgres"


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
                f"Airflow connection {conn_id!r} is not defined; add it in the Airflow UI, a secrets backend "
                f"or AIRFLOW_CONN_{conn_id.upper()}"
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
