"""Database connections of the tasks: Airflow Connections through the Postgres provider's hook.

Secrets live only in Airflow Connections: each pipeline's ``source_conn_id`` and
``warehouse_conn_id`` (defaults ``source_postgres`` and ``warehouse_postgres``, in
:mod:`warehouse_sync.config.pipeline`), defined in the UI, ``AIRFLOW_CONN_*`` variables or any
secrets backend. Nothing here writes a credential
anywhere: errors name the connection id and host, never a password. Every session runs in UTC with
ISO dates, which the catalog's types and the text keyset bounds rely on.

Every wait is bounded (docs/timeouts.md): each connection gets :data:`CONNECT_DEFAULTS` (a
connect timeout and TCP keepalives) unless its extra sets them, and each session the
``statement_timeout`` and ``lock_timeout`` the caller asks for (a pipeline's fields), which the
connection's extra may override. A connection that times out or is refused raises
:class:`DatabaseUnavailable`; a lock or statement timeout raises :class:`LockTimeout` or
:class:`StatementTimeout`, naming the connection, the setting and the statement. All three are
transient: the task retries.
"""

from __future__ import annotations

import copy
import json
import re
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo, timeout_from_conninfo

from warehouse_sync.config.pipeline import DEFAULT_SOURCE_CONN_ID, DEFAULT_WAREHOUSE_CONN_ID

if TYPE_CHECKING:
    from warehouse_sync.config import Pipeline

# The default connections (a pipeline may name others: Pipeline.source_conn_id / warehouse_conn_id).
SOURCE_CONN_ID = DEFAULT_SOURCE_CONN_ID
WAREHOUSE_CONN_ID = DEFAULT_WAREHOUSE_CONN_ID

# libpq parameters every connection gets unless its extra (or URI) sets them: fail a connect to a
# server that accepts and never answers after 10 s; notice a dead peer after 30 + 3 x 10 s idle.
CONNECT_DEFAULTS: dict[str, int] = {
    "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
}
# Session settings a connection's extra may set (milliseconds, or with a unit: "45s", "2min", as
# PostgreSQL accepts); they are SET at session start, never passed to libpq.
SESSION_TIMEOUTS = ("statement_timeout", "lock_timeout")


class DatabaseUnavailable(RuntimeError):
    """A database could not be reached; the message names the connection id and host, never a password."""


class LockTimeout(psycopg.errors.LockNotAvailable):
    """``lock_timeout`` expired: the message names the connection, the setting and the statement that waited."""


class StatementTimeout(psycopg.errors.QueryCanceled):
    """``statement_timeout`` expired: the message names the connection, the setting and the statement."""


@dataclass(frozen=True)
class _Session:
    label: str
    timeouts: dict[str, str] = field(default_factory=dict)


_SESSIONS: weakref.WeakKeyDictionary[psycopg.Connection, _Session] = weakref.WeakKeyDictionary()


def connect_params(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The libpq parameters of a connection's extra, without the session settings (:data:`SESSION_TIMEOUTS`).

    :data:`CONNECT_DEFAULTS` under the extra's own (the extra's values win).
    """
    return {**CONNECT_DEFAULTS, **{k: v for k, v in extra.items() if k not in SESSION_TIMEOUTS}}


def session_timeouts(extra: Mapping[str, Any], statement_timeout_seconds: int | None = None,
                     lock_timeout_seconds: int | None = None) -> dict[str, str]:
    """The session's ``statement_timeout`` and ``lock_timeout`` as PostgreSQL values.

    Each is the connection extra's value where it sets one, else the pipeline's seconds, else none (the server's
    own).
    """
    given = {"statement_timeout": statement_timeout_seconds, "lock_timeout": lock_timeout_seconds}
    timeouts = {}
    for name in SESSION_TIMEOUTS:
        if extra.get(name) not in (None, ""):
            timeouts[name] = str(extra[name])
        elif given[name] is not None:
            timeouts[name] = f"{given[name]}s"
    return timeouts


def _host(host: Any, port: Any) -> str:
    return f"{host or '(socket)'}:{port or 5432}"


def _describe(uri: str) -> str:
    params = conninfo_to_dict(uri)
    return f"{_host(params.get('host'), params.get('port'))}/{params.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unavailable(where: str, exc: psycopg.OperationalError, connect_timeout: Any,
                 password: str | None) -> DatabaseUnavailable:
    """``cannot connect to <where>: timeout after N s`` (or the server's reason); never the password."""
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        reason = f"timeout after {timeout_from_conninfo({'connect_timeout': connect_timeout})} s"
    else:
        reason = _first_line(exc)
    if password:
        reason = reason.replace(password, "***")
    return DatabaseUnavailable(f"cannot connect to {where}: {reason}")


def _statement_text(cur: psycopg.Cursor, query: Any, limit: int = 200) -> str:
    try:
        text = query.as_string(cur) if isinstance(query, sql.Composable) else (
            query.decode() if isinstance(query, bytes) else str(query))
    except Exception:  # naming the statement must never hide the error
        return "(statement not shown)"
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _named_timeout(cur: psycopg.Cursor, exc: psycopg.Error, query: Any) -> psycopg.Error | None:
    """A :class:`LockTimeout` or :class:`StatementTimeout` for a server-side timeout, else ``None``."""
    primary = exc.diag.message_primary or str(exc)
    kind: type[LockTimeout] | type[StatementTimeout]
    if isinstance(exc, psycopg.errors.LockNotAvailable) and "lock timeout" in primary:
        name, kind, doing = "lock_timeout", LockTimeout, "waiting for a lock another session holds"
    elif isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in primary:
        name, kind, doing = "statement_timeout", StatementTimeout, "running"
    else:
        return None
    session = _SESSIONS.get(cur.connection) or _Session("database")
    value = session.timeouts.get(name, "the server's own")
    context = (exc.diag.context or "").strip().splitlines()
    where = f" ({context[0]})" if context else ""
    return kind(f"{session.label}: {name} ({value}) expired {doing}{where}, in: {_statement_text(cur, query)}")


class TimeoutNamingCursor(psycopg.Cursor):
    """A cursor whose lock and statement timeouts name the connection, the setting and the statement.

    PostgreSQL's own message names none of them.
    """

    @contextmanager
    def _naming_timeouts(self, query: Any) -> Iterator[None]:
        try:
            yield
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            named = _named_timeout(self, exc, query)
            if named is None:
                raise
            raise named from exc

    def execute(self, query, params=None, **kwargs):
        """Runs ``query`` as psycopg's ``execute`` does; a lock or statement timeout names the statement."""
        with self._naming_timeouts(query):
            return super().execute(query, params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):
        """Runs ``query`` as psycopg's ``executemany`` does; a lock or statement timeout names the statement."""
        with self._naming_timeouts(query):
            return super().executemany(query, params_seq, **kwargs)

    @contextmanager
    def copy(self, statement, params=None, **kwargs):
        """Yields psycopg's ``Copy`` for ``statement``; a lock or statement timeout names the statement."""
        with self._naming_timeouts(statement), super().copy(statement, params, **kwargs) as copy_:
            yield copy_


def prepare_session(conn: psycopg.Connection, timeouts: Mapping[str, str] | None = None,
                    label: str = "database") -> psycopg.Connection:
    """Sets the session settings every query here relies on: UTC text output, ISO dates, the timeouts.

    The timeouts are the given ``statement_timeout`` / ``lock_timeout`` (PostgreSQL values: ``"300s"``,
    ``"30000"``).

    Raises:
        ConfigError: A timeout is not a duration PostgreSQL accepts (the connection is closed).
    """
    applied: dict[str, str] = {}
    try:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET datestyle = 'ISO, YMD'")
        conn.execute("SET application_name = 'warehouse_sync'")
        for name, value in (timeouts or {}).items():
            try:
                row = conn.execute("SELECT set_config(%s, %s, false)", (name, value)).fetchone()
                assert row is not None  # set_config returns one row
                (applied[name],) = row
            except psycopg.errors.DataError as exc:  # invalid_parameter_value
                from warehouse_sync.config import ConfigError

                raise ConfigError(f"{label}: {name} {value!r} is not a duration PostgreSQL accepts "
                                  f"(milliseconds, or with a unit: '45s', '2min'): {_first_line(exc)}") from None
        conn.commit()
    except BaseException:
        conn.close()
        raise
    _SESSIONS[conn] = _Session(label, applied)
    conn.cursor_factory = TimeoutNamingCursor
    return conn


def connect_uri(uri: str, label: str = "database", *, statement_timeout_seconds: int | None = None,
                lock_timeout_seconds: int | None = None) -> psycopg.Connection:
    """Opens a psycopg connection from a libpq URI (Airflow's connection URI form works as is).

    The connection gets :data:`CONNECT_DEFAULTS` under the URI's own parameters, and the given session timeouts.

    Raises:
        DatabaseUnavailable: The server refused, timed out or could not be reached.
    """
    params = {**CONNECT_DEFAULTS, **conninfo_to_dict(uri)}
    where = f"{label} at {_describe(uri)}"
    try:
        raw = psycopg.connect(make_conninfo("", **params))
    except psycopg.OperationalError as exc:
        # A password comes from the URI, whose parameters are all strings.
        password = cast("str | None", params.get("password"))
        raise _unavailable(where, exc, params["connect_timeout"], password) from None
    return prepare_session(raw, session_timeouts({}, statement_timeout_seconds, lock_timeout_seconds), where)


def _airflow_connection(conn_id: str):
    """The Airflow Connection ``conn_id`` (any secrets backend)."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and friends
        if "isn't defined" in str(exc) or "not found" in str(exc).lower():
            raise DatabaseUnavailable(
                f"Airflow connection {conn_id!r} is not defined; add it in the Airflow UI, a secrets backend "
                f"or AIRFLOW_CONN_{conn_id.upper()}"
            ) from None
        raise


def connect(conn_id: str, *, statement_timeout_seconds: int | None = None,
            lock_timeout_seconds: int | None = None) -> psycopg.Connection:
    """Opens a psycopg 3 connection for an Airflow connection id (inside a task).

    Uses ``PostgresHook`` so that every Airflow secrets backend works; the hook gets a copy of the
    Connection whose extra has :data:`CONNECT_DEFAULTS` under its own values and no session
    settings. The session timeouts are the extra's ``statement_timeout`` / ``lock_timeout`` where it
    sets them, else the given seconds, else the server's.

    Raises:
        DatabaseUnavailable: The connection is not defined, or the server refused, timed out or
            cannot be reached (the message names the connection id and host, never the password).
        ConfigError: The extra's ``statement_timeout`` or ``lock_timeout`` is not a duration.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    airflow_conn = _airflow_connection(conn_id)
    extra = airflow_conn.extra_dejson
    params = connect_params(extra)
    task_conn = copy.deepcopy(airflow_conn)
    task_conn.extra = json.dumps(params)
    where = f"Airflow connection {conn_id!r} (host {_host(airflow_conn.host, airflow_conn.port)})"
    try:
        raw = PostgresHook(postgres_conn_id=conn_id, connection=task_conn).get_conn()
    except psycopg.OperationalError as exc:
        raise _unavailable(where, exc, params["connect_timeout"], airflow_conn.password) from None
    if not isinstance(raw, psycopg.Connection):
        raise RuntimeError("warehouse_sync needs psycopg 3 under PostgresHook (SQLAlchemy 2 and psycopg installed)")
    return prepare_session(raw, session_timeouts(extra, statement_timeout_seconds, lock_timeout_seconds), where)


@contextmanager
def connection(conn_id: str, *, statement_timeout_seconds: int | None = None,
               lock_timeout_seconds: int | None = None) -> Iterator[psycopg.Connection]:
    """``with connection("source_postgres") as conn:`` opens (:func:`connect`), yields and always closes."""
    conn = connect(conn_id, statement_timeout_seconds=statement_timeout_seconds,
                   lock_timeout_seconds=lock_timeout_seconds)
    try:
        yield conn
    finally:
        conn.close()


def _options(options: Any, timeouts: Mapping[str, str]) -> str:
    """The libpq ``options`` with ``-c name=value`` for each timeout appended (spaces escaped)."""
    settings = ["-c " + f"{name}={value}".replace("\\", "\\\\").replace(" ", "\\ ") for name, value in timeouts.items()]
    return " ".join(([str(options)] if options else []) + settings)


def connection_uri(conn_id: str, *, statement_timeout_seconds: int | None = None,
                   lock_timeout_seconds: int | None = None) -> str:
    """The libpq connection string of an Airflow connection (any secrets backend).

    It has the same connect parameters and session timeouts :func:`connect` uses (the timeouts as ``options``).
    Holds the password: never log it.

    Raises:
        DatabaseUnavailable: The connection is not defined.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = _airflow_connection(conn_id)
    extra = conn.extra_dejson
    params: dict[str, Any] = {"host": conn.host, "port": conn.port, "user": conn.login, "password": conn.password,
                              "dbname": conn.schema}
    params.update({k: v for k, v in connect_params(extra).items() if k not in PostgresHook.ignored_extra_options})
    timeouts = session_timeouts(extra, statement_timeout_seconds, lock_timeout_seconds)
    if timeouts:
        params["options"] = _options(params.get("options"), timeouts)
    return make_conninfo("", **{k: v for k, v in params.items() if v not in (None, "")})


def sqlalchemy_url(uri: str) -> str:
    """A libpq URI as a SQLAlchemy URL (``postgresql+psycopg://…``), for libraries that take one.

    One such library is Great Expectations. A Unix-socket host travels as the ``host`` query parameter.
    """
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
def source_and_warehouse(pipeline: Pipeline | None = None) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """``with source_and_warehouse(pipeline) as (src, wh):`` both Airflow connections, always closed.

    With a pipeline: its ``source_conn_id`` and ``warehouse_conn_id``; the source session gets its
    ``statement_timeout_seconds`` and both sessions its ``lock_timeout_seconds`` (each unless the
    connection's extra sets its own). Without one: the default connections, no session timeouts.
    """
    statement = pipeline.statement_timeout_seconds if pipeline else None
    lock = pipeline.lock_timeout_seconds if pipeline else None
    source_id = pipeline.source_conn_id if pipeline else SOURCE_CONN_ID
    warehouse_id = pipeline.warehouse_conn_id if pipeline else WAREHOUSE_CONN_ID
    with connection(source_id, statement_timeout_seconds=statement, lock_timeout_seconds=lock) as src, \
            connection(warehouse_id, lock_timeout_seconds=lock) as wh:
        yield src, wh
