"""Data quality: what analysts read.

* :mod:`.suite` — the run's expectations (standard, configured, volume band); pure.
* :mod:`.validate` — runs the suite with Great Expectations, stores results and Data Docs.
* :mod:`.page` — the "Data quality" page (read from the bookkeeping tables, rendered with Jinja2).
* :mod:`.app` — the FastAPI app that serves it inside the Airflow API server (auth by Airflow).
"""
