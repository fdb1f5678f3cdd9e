"""Warehouse Sync: the bad entries of the pipeline file, shown as this file's DAG import error.

``warehouse_sync_dags.py`` builds the DAGs of every valid pipeline and leaves the bad entries out,
so that one bad entry does not take the other pipelines down. It cannot raise for them itself: in
Airflow 3 an import error of a DAG file discards every DAG of the file, and even an error recorded
against the file after its DAGs loaded marks all of them stale with import errors (no longer
scheduled or triggerable). So the bad entries are raised here, in a file that defines no DAG: the
``ConfigError`` names the file, each bad pipeline and its field, and Airflow shows it under
"DAG Import Errors" in the UI and in ``airflow dags list-import-errors``, as this file's error.

A problem of the whole file (unreadable, bad YAML, a bad ``defaults:`` or ``alerts:`` section) is
raised by ``warehouse_sync_dags.py`` itself, where no DAG can be built; this file stays quiet then.
"""

from __future__ import annotations

from warehouse_sync.config import ConfigError, read_config
from warehouse_sync.storage import config_path

try:
    _error = read_config(config_path()).error
except ConfigError:
    _error = None  # the whole file is bad: warehouse_sync_dags.py reports it
if _error is not None:
    raise _error
