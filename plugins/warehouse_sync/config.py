"""Pipeline configuration: one YAML file -> frozen, validated dataclasses.

The file (``include/pipelines.yaml`` by default, or ``$WAREHOUSE_SYNC_CONFIG``) looks like::

    defaults:
      batch_size: 50000          # rows per mapped extract task
      page_size: 10000           # rows per keyset page inside a batch
      settle_timeout_seconds: 60 # how long to wait out in-flight source transactions
      lookback_minutes: 0        # extra overlap re-read before each window
    pipelines:
      - name: orders
        source: tpch.orders
        primary_key: [o_orderkey]
        cursor: updated_at
        target: tpch.orders

Every problem is reported as a :class:`ConfigError` naming the file, the pipeline and the field, so
that a bad entry shows up as a readable DAG import error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from warehouse_sync.checks import Check, parse_checks

REPO_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = Path(os.environ.get("WAREHOUSE_SYNC_INCLUDE", REPO_ROOT / "include"))
DEFAULT_CONFIG = INCLUDE_DIR / "pipelines.yaml"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DEFAULTS: dict[str, Any] = {
    "batch_size": 50_000,
    "snapshot_batch_size": 250_000,
    "page_size": 10_000,
    "settle_timeout_seconds": 60,
    "lookback_minutes": 0,
    "reconcile_full_table": True,
    "delete_mode": "soft",
    "repair_max_rows": 10_000,
    "repair_max_fraction": 0.05,
    "volume_tolerance": 0.5,
}
DELETE_MODES = ("soft", "hard")
_PIPELINE_FIELDS = {"name", "source", "primary_key", "cursor", "target", "tags", "checks", *_DEFAULTS}


def storage_root(env_var: str, folder: str) -> Any:
    """A file location as an ``ObjectStoragePath``: ``$env_var`` (any fsspec URL, e.g.
    ``s3://bucket/prefix`` with the matching Airflow connection) or ``file://<repo>/<folder>``."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(os.environ.get(env_var) or f"file://{REPO_ROOT / folder}")


class ConfigError(ValueError):
    """A pipeline configuration is invalid; the message names file, pipeline and field."""


@dataclass(frozen=True)
class TableRef:
    """A schema-qualified table name, e.g. ``tpch.orders``."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Pipeline:
    """One synced table.

    Attributes:
        name: Short name; the DAG id is ``sync_<name>``.
        source: Source table in the ``source_postgres`` connection.
        target: Target table in the ``warehouse_postgres`` connection.
        primary_key: Primary-key columns, in key order (one or more).
        cursor: Column that moves forward on every insert and update (``updated_at``).
        batch_size: Rows per batch, i.e. per mapped extract task.
        snapshot_batch_size: Rows per batch of a full snapshot (bigger: a snapshot reads in key
            order, and task memory is bounded by ``page_size`` either way).
        page_size: Rows per keyset page read inside a batch (bounds task memory).
        settle_timeout_seconds: Seconds to wait for source transactions that started before
            the window end to finish, before extracting (see README, "Late commits").
        lookback_minutes: Minutes re-read before each window start (an overlap; the merge is
            idempotent, so re-reading costs only time).
        reconcile_full_table: Also reconcile the whole table (not only the window) each run.
        delete_mode: ``soft`` (set ``_deleted_at``, keep the row) or ``hard`` (delete it) for rows
            deleted at the source.
        repair_max_rows: Most rows a repair may write; beyond it the repair is refused.
        repair_max_fraction: Most rows a repair may write, as a fraction of the table (0-1).
        volume_tolerance: Relative half-width of the volume band around the median row count of
            the recent windows (a data-quality ``warn``).
        checks: Configured data-quality checks (:mod:`warehouse_sync.checks`); the standard ones
            (key not null and unique, volume band) are added by the validate step.
        tags: Extra DAG tags.
    """

    name: str
    source: TableRef
    target: TableRef
    primary_key: tuple[str, ...]
    cursor: str
    batch_size: int = _DEFAULTS["batch_size"]
    snapshot_batch_size: int = _DEFAULTS["snapshot_batch_size"]
    page_size: int = _DEFAULTS["page_size"]
    settle_timeout_seconds: int = _DEFAULTS["settle_timeout_seconds"]
    lookback_minutes: int = _DEFAULTS["lookback_minutes"]
    reconcile_full_table: bool = _DEFAULTS["reconcile_full_table"]
    delete_mode: str = _DEFAULTS["delete_mode"]
    repair_max_rows: int = _DEFAULTS["repair_max_rows"]
    repair_max_fraction: float = _DEFAULTS["repair_max_fraction"]
    volume_tolerance: float = _DEFAULTS["volume_tolerance"]
    checks: tuple[Check, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def dag_id(self) -> str:
        return f"sync_{self.name}"


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go (each channel optional; none configured means log only).

    Attributes:
        smtp_to: Recipients of alert e-mails (SMTP via the ``smtp_conn_id`` Airflow connection).
        smtp_conn_id: Airflow connection of the SMTP server.
        smtp_from: Sender address.
        slack_webhook_conn_id: Airflow connection of a Slack incoming webhook (URL in its password).
    """

    smtp_to: tuple[str, ...] = ()
    smtp_conn_id: str = "smtp_default"
    smtp_from: str = "warehouse-sync@localhost"
    slack_webhook_conn_id: str | None = None


@dataclass(frozen=True)
class SyncConfig:
    """The whole file: where it came from, its pipelines in file order, and its alert channels."""

    path: Path
    pipelines: tuple[Pipeline, ...]
    alerts: AlertConfig = AlertConfig()

    def pipeline(self, name: str) -> Pipeline:
        """Returns the pipeline called ``name`` (or whose source or target is ``name``).

        Raises:
            ConfigError: No such pipeline.
        """
        for p in self.pipelines:
            if name in (p.name, str(p.source), str(p.target)):
                return p
        raise ConfigError(f"{self.path}: no pipeline named {name!r}")


def _table_ref(value: Any, where: str) -> TableRef:
    if not isinstance(value, str) or value.count(".") != 1 or not all(value.split(".")):
        raise ConfigError(f"{where}: expected 'schema.table', got {value!r}")
    schema, name = value.split(".")
    return TableRef(schema, name)


def _positive_int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _parse_pipeline(raw: Any, index: int, defaults: dict[str, Any], path: Path) -> Pipeline:
    label = raw.get("name", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
    where = f"{path}: pipeline {label!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _PIPELINE_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for required in ("name", "source", "primary_key", "cursor", "target"):
        if required not in raw:
            raise ConfigError(f"{where}: field '{required}' is required")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}, field 'name': expected lower_snake_case, got {name!r}")
    pk = raw["primary_key"]
    if isinstance(pk, str):
        pk = [pk]
    if not isinstance(pk, list) or not pk or not all(isinstance(c, str) and c for c in pk):
        raise ConfigError(f"{where}, field 'primary_key': expected a non-empty list of column names")
    if len(set(pk)) != len(pk):
        raise ConfigError(f"{where}, field 'primary_key': repeated column in {pk}")
    cursor = raw["cursor"]
    if not isinstance(cursor, str) or not cursor:
        raise ConfigError(f"{where}, field 'cursor': expected a column name, got {cursor!r}")
    if cursor in pk:
        raise ConfigError(f"{where}, field 'cursor': the cursor {cursor!r} may not be part of the primary key")
    merged = {**defaults, **{k: raw[k] for k in _DEFAULTS if k in raw}}
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError(f"{where}, field 'tags': expected a list of strings")
    if not isinstance(merged["reconcile_full_table"], bool):
        raise ConfigError(f"{where}, field 'reconcile_full_table': expected true or false")
    if merged["delete_mode"] not in DELETE_MODES:
        raise ConfigError(f"{where}, field 'delete_mode': expected one of {DELETE_MODES}, got {merged['delete_mode']!r}")
    fraction = merged["repair_max_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"{where}, field 'repair_max_fraction': expected a number in (0, 1], got {fraction!r}")
    tolerance = merged["volume_tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 10:
        raise ConfigError(f"{where}, field 'volume_tolerance': expected a number in (0, 10), got {tolerance!r}")
    return Pipeline(
        name=name,
        source=_table_ref(raw["source"], f"{where}, field 'source'"),
        target=_table_ref(raw["target"], f"{where}, field 'target'"),
        primary_key=tuple(pk),
        cursor=cursor,
        batch_size=_positive_int(merged["batch_size"], f"{where}, field 'batch_size'"),
        snapshot_batch_size=_positive_int(merged["snapshot_batch_size"], f"{where}, field 'snapshot_batch_size'"),
        page_size=_positive_int(merged["page_size"], f"{where}, field 'page_size'"),
        settle_timeout_seconds=_positive_int(
            merged["settle_timeout_seconds"], f"{where}, field 'settle_timeout_seconds'", 0
        ),
        lookback_minutes=_positive_int(merged["lookback_minutes"], f"{where}, field 'lookback_minutes'", 0),
        reconcile_full_table=merged["reconcile_full_table"],
        delete_mode=merged["delete_mode"],
        repair_max_rows=_positive_int(merged["repair_max_rows"], f"{where}, field 'repair_max_rows'", 0),
        repair_max_fraction=float(fraction),
        volume_tolerance=float(tolerance),
        checks=parse_checks(raw.get("checks"), where),
        tags=tuple(tags),
    )


def _parse_alerts(raw: Any, path: Path) -> AlertConfig:
    where = f"{path}: alerts"
    if raw is None:
        return AlertConfig()
    if not isinstance(raw, dict) or set(raw) - {"smtp", "slack_webhook"}:
        raise ConfigError(f"{where}: expected a mapping with 'smtp' and/or 'slack_webhook'")
    smtp = raw.get("smtp") or {}
    slack = raw.get("slack_webhook") or {}
    if not isinstance(smtp, dict) or set(smtp) - {"to", "conn_id", "from"}:
        raise ConfigError(f"{where}, field 'smtp': expected to, conn_id, from")
    if not isinstance(slack, dict) or set(slack) - {"conn_id"}:
        raise ConfigError(f"{where}, field 'slack_webhook': expected conn_id")
    to = smtp.get("to", [])
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not all(isinstance(t, str) and "@" in t for t in to):
        raise ConfigError(f"{where}, field 'smtp.to': expected e-mail addresses, got {to!r}")
    if smtp and not to:
        raise ConfigError(f"{where}, field 'smtp.to': at least one recipient is required")
    return AlertConfig(
        smtp_to=tuple(to), smtp_conn_id=smtp.get("conn_id", "smtp_default"),
        smtp_from=smtp.get("from", "warehouse-sync@localhost"),
        slack_webhook_conn_id=slack.get("conn_id"),
    )


def load_config(path: Path | str | None = None) -> SyncConfig:
    """Reads and validates the pipeline file.

    Args:
        path: YAML file; default ``$WAREHOUSE_SYNC_CONFIG`` or ``include/pipelines.yaml``.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: Unreadable file, bad YAML, or an invalid pipeline (the message names the
            file, the pipeline and the field).
    """
    path = Path(path or os.environ.get("WAREHOUSE_SYNC_CONFIG", DEFAULT_CONFIG))
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("pipelines"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'pipelines' list")
    defaults = dict(_DEFAULTS)
    raw_defaults = doc.get("defaults") or {}
    if not isinstance(raw_defaults, dict) or set(raw_defaults) - set(_DEFAULTS):
        raise ConfigError(f"{path}: 'defaults' may only set {', '.join(sorted(_DEFAULTS))}")
    defaults.update(raw_defaults)
    pipelines = tuple(_parse_pipeline(raw, i, defaults, path) for i, raw in enumerate(doc["pipelines"]))
    seen: set[str] = set()
    for p in pipelines:
        if p.name in seen:
            raise ConfigError(f"{path}: pipeline {p.name!r}, field 'name': used twice")
        seen.add(p.name)
    return SyncConfig(path=path, pipelines=pipelines, alerts=_parse_alerts(doc.get("alerts"), path))
