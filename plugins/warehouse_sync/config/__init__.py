"""Warehouse Sync configuration: the pipeline file, validated into frozen pydantic models.

One YAML file (the DAG file decides where it is) lists the synced tables, optional ``defaults:``
overriding :class:`Pipeline`'s own defaults, and optional ``alerts:``. :func:`load_config` reads it
into a :class:`SyncConfig` of :class:`Pipeline` values (each with its data-quality
:class:`Expectation` rules) and :class:`Alerts`; every problem is a :class:`ConfigError` naming the
file, the pipeline and the field.

Modules:
    pipeline: The models (:class:`Pipeline`, :class:`SyncConfig`); every default of a pipeline lives here.
    settings: A pipeline's nested blocks: :class:`ExecutionTimeouts` (``task_timeout_minutes``) and
        :class:`CdcSettings` (``cdc``).
    schedule: A pipeline's ``schedule:`` (cron or preset, checked at load) and the default schedules.
    columns: A pipeline's ``columns:`` selection (:class:`ColumnSelection`, include or exclude).
    alerts: The ``alerts:`` section (:class:`Alerts`, and the file's shape of it).
    load: :func:`load_config` (every problem raised) and :func:`read_config` (the valid pipelines,
        and the problems of the bad entries apart): the file read, ``defaults:`` applied, errors named.
    expectations: One data-quality rule (:class:`Expectation`) and the names it may use
        (:data:`EXPECTATIONS`, :data:`SEVERITIES`).

Importing this package is cheap (pydantic and PyYAML only: no Airflow, database driver or Arrow),
so that DAG files parse fast.
"""

from warehouse_sync.config.alerts import Alerts
from warehouse_sync.config.columns import ColumnSelection
from warehouse_sync.config.expectations import EXPECTATIONS, SEVERITIES, Expectation
from warehouse_sync.config.load import ConfigRead, load_config, read_config
from warehouse_sync.config.pipeline import ConfigError, Pipeline, SyncConfig
from warehouse_sync.config.schedule import RECONCILE_SCHEDULE, SYNC_SCHEDULE
from warehouse_sync.config.settings import CdcSettings, ExecutionTimeouts

__all__ = [
    "ConfigError",
    "Pipeline",
    "CdcSettings",
    "Alerts",
    "SyncConfig",
    "load_config",
    "read_config",
    "ConfigRead",
    "ColumnSelection",
    "ExecutionTimeouts",
    "Expectation",
    "EXPECTATIONS",
    "SEVERITIES",
    "SYNC_SCHEDULE",
    "RECONCILE_SCHEDULE",
]
