"""Airflow plugin: the "Data quality" page at ``/data-quality/`` on the API server, in the UI's menu.

Wiring only; the app is :mod:`warehouse_sync.quality.app`, the page :mod:`warehouse_sync.quality.page`.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from warehouse_sync.quality.app import PREFIX, create_app


class WarehouseSyncDataQuality(AirflowPlugin):
    """Serves the page and adds it to the navigation (Browse menu), shown inside the Airflow UI."""

    name = "warehouse_sync_data_quality"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "Warehouse Sync data quality"}]
    external_views = [{
        "name": "Data quality",
        "href": "data-quality/",
        "url_route": "data-quality",
        "destination": "nav",
        "category": "browse",
    }]
