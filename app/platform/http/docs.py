"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served with their JavaScript and CSS from this
process, not from a CDN: they work on a machine or cluster without internet access.

The assets come from the pinned ``fastapi-offline`` package (requirements.txt), which ships Swagger
UI's bundle and CSS and ReDoc's standalone bundle; they are served under ``/docs/assets/``, so the
Ingress's ``/docs`` prefix already routes them. Swagger UI's validator badge (which calls an outside
service) is off, and ReDoc loads no Google fonts.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
CACHE_CONTROL = "public, max-age=86400"  # a new release of the package comes with a new image anyway


DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"

# One router for every app (built once: an app includes it without analysing its routes again); the
# pages read the app's title and schema URL from the request.
router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


@router.get(DOCS_URL)
async def swagger_ui(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    base = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{base}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=f"{base}{OAUTH2_REDIRECT_URL}",
        swagger_js_url=f"{base}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{base}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{base}{ASSETS_PATH}/favicon.png",
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_URL)
async def redoc(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    base = _root(request)
    return get_redoc_html(
        openapi_url=f"{base}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{base}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{base}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


# Where the earlier Quarkus store's users find its docs and schema (SmallRye's paths).
@router.get("/swagger-ui")
async def swagger_ui_elsewhere(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_root(request)}{DOCS_URL}", status_code=308)


@router.get("/openapi")
async def openapi_elsewhere(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_root(request)}{request.app.openapi_url}", status_code=308)


@router.get(f"{ASSETS_PATH}/{{name}}")
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)
    return FileResponse(ASSETS_DIR / name, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL})


def install_docs(app: FastAPI) -> None:
    """The docs pages and their assets; the app must be created with ``docs_url=None, redoc_url=None``."""
    app.include_router(router)
