"""The FastAPI app behind the "Data quality" page, mounted by the Airflow plugin at ``/data-quality``.

Routes: ``/`` (the page) and ``/docs/<pipeline>/<path>`` (the Great Expectations Data Docs under the
reports root). Both require a signed-in Airflow user allowed to see the website (the auth manager's
``is_authorized_view(WEBSITE)``): the Airflow UI's ``_token`` cookie or an ``Authorization: Bearer``
token, exactly as Airflow's own API checks them. An anonymous request gets 401 and a link to sign in,
never data. Each pipeline is shown only to a user who may read its sync DAG (the auth manager's
``filter_authorized_dag_ids``, method ``GET``); its Data Docs answer 403 to others.

Every answer carries a Content-Security-Policy. The page's is strict (:data:`PAGE_CSP`: no script,
its one style block by nonce, framed only by Airflow). The Data Docs, which load floating CDN scripts,
are served sandboxed (:data:`DOCS_CSP`): their scripts run in an opaque origin, without the Airflow
cookie and unable to call Airflow as the viewer (docs/data-quality.md says why sandbox, not vendoring).
Airflow's modules are imported on the first request, inside the API server, so loading the plugin
elsewhere (scheduler, task runners) stays cheap.
"""

from __future__ import annotations

import importlib.util
import logging
import mimetypes
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape

if TYPE_CHECKING:
    from warehouse_sync.config import Pipeline

log = logging.getLogger(__name__)
PREFIX = "/data-quality"
# The page and every error answer: nothing but the page's own style block (by nonce) and same-origin
# images; shown only inside Airflow's own frames; no form, no <base>.
PAGE_CSP = ("default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; frame-ancestors 'self'; "
            "base-uri 'none'; form-action 'none'")
ERROR_CSP = PAGE_CSP.replace("style-src 'nonce-{nonce}'; ", "")
# Where Great Expectations 1.x Data Docs load their scripts, styles and fonts from (floating versions).
_CDNS = ("https://cdn.jsdelivr.net", "https://cdnjs.cloudflare.com", "https://code.jquery.com",
             "https://maxcdn.bootstrapcdn.com", "https://stackpath.bootstrapcdn.com", "https://unpkg.com")
# The Data Docs: scripts may run (the tables' filters, the vega charts) but in a sandbox without
# allow-same-origin, i.e. an opaque origin: no Airflow cookie, no storage, no same-origin requests.
# No fetch/XHR anywhere (connect-src), no forms, no top navigation; popups stay sandboxed.
DOCS_CDNS = " ".join(_CDNS)
DOCS_CSP = ("sandbox allow-scripts allow-popups; default-src 'none'; "
            f"script-src 'unsafe-inline' {DOCS_CDNS}; style-src 'self' 'unsafe-inline' {DOCS_CDNS}; "
            f"font-src 'self' data: {DOCS_CDNS}; img-src 'self' data:; connect-src 'none'; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def auth_manager() -> Any:
    """The API server's Airflow auth manager (a dependency, so tests can give another)."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


async def require_user(request: Request, manager: Any = Depends(auth_manager)) -> object:
    """The signed-in Airflow user, if allowed to see the website.

    Raises:
        HTTPException: 401 without a valid token, 403 when the auth manager says no.
    """
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    bearer = (HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
              if header.lower().startswith("bearer ") else None)
    user = await get_user(request, None, bearer)
    if not manager.is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=403, detail="Forbidden")
    return user


def readable(manager: Any, user: object, pipelines: tuple[Pipeline, ...]) -> tuple[Pipeline, ...]:
    """The pipelines whose sync DAG the user may read (``GET``), in configuration order.

    The auth manager decides: FAB or Keycloak apply per-DAG rules; the simple auth manager lets every
    role from ``viewer`` up read every DAG. DAGs are asked about without a team (no multi-team mode).
    """
    allowed = manager.filter_authorized_dag_ids(dag_ids={p.dag_id for p in pipelines}, user=user, method="GET")
    return tuple(p for p in pipelines if p.dag_id in allowed)


def gx_static_root() -> Path | None:
    """The installed Great Expectations' ``render/view/static`` folder (found without importing GX), if any.

    Every Data Docs site gets a copy of it as its ``static/`` folder (GX's stylesheets, fonts, images).
    """
    spec = importlib.util.find_spec("great_expectations")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "render" / "view" / "static"


def first_line(exc: BaseException) -> str:
    """An error's first line (no traceback, no connection string)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _base(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return root[: -len(PREFIX)] if root.endswith(PREFIX) else root


def create_app() -> FastAPI:
    """The app: the page, the Data Docs, and an HTML answer (not JSON) when sign-in is needed."""
    app = FastAPI(title="Warehouse Sync: data quality", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", ERROR_CSP)  # the routes set their own
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

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
    def page(request: Request, user: object = Depends(require_user),
             manager: Any = Depends(auth_manager)) -> HTMLResponse:
        from warehouse_sync.config import read_config
        from warehouse_sync.db.connections import connection
        from warehouse_sync.quality.page import TableView, collect, render
        from warehouse_sync.storage import config_path

        configured = read_config(config_path()).config.pipelines  # a bad entry is the DAG import error
        pipelines = readable(manager, user, configured)
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
        hidden = len(configured) - len(pipelines)
        note = (f"{hidden} more pipeline{'s' if hidden > 1 else ''} not shown: your Airflow user may not read "
                f"{'their' if hidden > 1 else 'its'} sync DAG." if hidden else None)
        nonce = secrets.token_urlsafe(18)
        return HTMLResponse(render(list(views.values()), base=_base(request), note=note, nonce=nonce),
                            status_code=status, headers={"Content-Security-Policy": PAGE_CSP.format(nonce=nonce)})

    @app.get("/docs/{pipeline}/{run}/static/{path:path}")
    def data_docs_assets(pipeline: str, run: str, path: str) -> Response:
        """GX's own stylesheets, fonts and images of a Data Docs site, without sign-in.

        The sandboxed pages ask for them from an opaque origin, so without the Airflow cookie. They are
        served from the installed Great Expectations package (what GX copies into every site), never from
        the reports root: the answer is the same for any pipeline and run and shows no data.
        """
        root = gx_static_root()
        parts = [p for p in path.split("/") if p]
        if root is None or not parts or any(p in (".", "..") for p in parts):
            raise HTTPException(status_code=404, detail="No such file")
        target = root.joinpath(*parts).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            raise HTTPException(status_code=404, detail="No such file")
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return Response(target.read_bytes(), media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    @app.get("/docs/{path:path}")
    def data_docs(path: str, user: object = Depends(require_user), manager: Any = Depends(auth_manager)) -> Response:
        from warehouse_sync.config import read_config
        from warehouse_sync.storage import config_path, reports_root

        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise HTTPException(status_code=404, detail="No such report")
        pipeline = next((p for p in read_config(config_path()).config.pipelines if p.name == parts[0]), None)
        if pipeline is None:  # docs/<pipeline>/<run>/...: a folder of no configured pipeline is nobody's
            raise HTTPException(status_code=404, detail="No such report")
        if not readable(manager, user, (pipeline,)):
            raise HTTPException(status_code=403, detail="Forbidden")
        target = reports_root() / "data_docs"
        for part in parts:
            target = target / part
        if not target.is_file():
            raise HTTPException(status_code=404, detail="No such report")
        media_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        return Response(target.read_bytes(), media_type=media_type, headers={"Content-Security-Policy": DOCS_CSP})

    return app
