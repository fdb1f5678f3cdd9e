"""Bookkeeping in the warehouse's ``warehouse_sync`` schema.

* :mod:`.audit` — one row per step of every run; one per located drift.
* :mod:`.state` — per pipeline: high watermark and late horizon.
* :mod:`.marks` — an integer cursor's value at each window end (what a window of time means for it).
* :mod:`.schema_history` — one row per schema change of a source (applied, kept, ignored, rejected).
* :mod:`.migrate` — the tables' DDL (the only DDL outside the load).
"""
