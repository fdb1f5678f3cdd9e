"""The FastAPI app behind the "Data quality" page, mounted by the Airflow plugin at ``/data-quality``.

Routes: ``/`` (the page) and ``/docs/<path>`` (the Great Expectations Data Docs under the reports
root). Both require a signed-in Airflow user allowed to see the website (the auth manager's
``is_authorized_view(WEBSITE)``): the Airflow UI's ``_token`` cookie or an ``Authorization: Bearer``
token, exactly as Airflow's own API checks them. An anonymous request gets 401 and a link to sign in,
never data. Airflow's security module is imported on the first request, inside the API server, so
loading the plugin elsewhere (scheduler, task runners) stays cheap.
"""

from __future__ import annotations

import logging
import mimetypes

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape

log = logging.getLogger(__name__)
PREFIX = "/data-quality"


async def require_user(request: Request) -> object:
    """The signed-in Airflow user, if allowed to see the website.

    Raises:
        HTTPException: 401 without a valid token, 403 when the auth manager says no.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    bearer = (HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
              if header.lower().startswith("bearer ") else None)
    user = await get_user(request, None, bearer)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=403, detail="Forbidden")
    return user


def first_line(exc: BaseException) -> str:
    """An error's first line (no traceback, no connection string)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _base(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return root[: -len(PREFIX)] if root.endswith(PREFIX) else root


def create_app() -> FastAPI:
    """The app: the page, the Data Docs, and an HTML answer (not JSON) when sign-in is needed."""
    app = FastAPI(title="Warehouse Sync: data quality", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def sign_in_first(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403):
            login = f"{_base(request)}/auth/login?next={_base(request)}{PREFIX}/"
            text = ("Sign in to Airflow to see data quality." if exc.status_code == 401
                    else "Your Airflow user may not see this page.")
            return HTMLResponse(f'<!DOCTYPE html><title>Data quality</title><p>{escape(text)} '
                                f'<a href="{escape(login)}" target="_top">Sign in</a></p>', status_code=exc.status_code)
        return HTMLResponse(f"<p>{escape(str(exc.detail))}</p>", status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, _user: object = Depends(require_user)) -> HTMLResponse:
        from warehouse_sync.config import read_config
        from warehouse_sync.db.connections import connection
        from warehouse_sync.quality.page import TableView, collect, render
        from warehouse_sync.storage import config_path

        pipelines = read_config(config_path()).config.pipelines  # a bad entry is the DAG import error
        # every pipeline, each from its own warehouse connection; one unreachable warehouse hides only its tables
        views = {p.name: TableView(p) for p in pipelines}
        failed = 0
        for conn_id in dict.fromkeys(p.warehouse_conn_id for p in pipelines):
            group = tuple(p for p in pipelines if p.warehouse_conn_id == conn_id)
            try:
                with connection(conn_id) as conn:
                    views.update({v.pipeline.name: v for v in collect(conn, group)})
            except Exception as exc:  # a plain sentence on the page, details in the log
                log.exception("data-quality page: cannot read warehouse %s", conn_id)
                failed += 1
                for p in group:
                    views[p.name].error = f"The warehouse {conn_id} cannot be read right now: {first_line(exc)}"
        status = 503 if failed and failed == len({p.warehouse_conn_id for p in pipelines}) else 200
        return HTMLResponse(render(list(views.values()), base=_base(request)), status_code=status)

    @app.get("/docs/{path:path}")
    def data_docs(path: str, _user: object = Depends(require_user)) -> Response:
        from warehouse_sync.storage import reports_root

        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise HTTPException(status_code=404, detail="No such report")
        target = reports_root() / "data_docs"
        for part in parts:
            target = target / part
        if not target.is_file():
            raise HTTPException(status_code=404, detail="No such report")
        media_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        return Response(target.read_bytes(), media_type=media_type)

    return app
