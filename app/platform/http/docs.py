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
from fastapi import FastAPI, Request
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


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """The docs pages and their assets; the app must be created with ``docs_url=None, redoc_url=None``."""
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"
    parameters = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{base}{oauth2_redirect_url}",
            swagger_js_url=f"{base}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=f"{base}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    # Where the earlier Quarkus store's users find its docs and schema (SmallRye's paths).
    @app.get("/swagger-ui", include_in_schema=False)
    async def swagger_ui_elsewhere(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{root(request)}{docs_url}", status_code=308)

    @app.get("/openapi", include_in_schema=False)
    async def openapi_elsewhere(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{root(request)}{app.openapi_url}", status_code=308)

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status_code=404)
        return FileResponse(ASSETS_DIR / name, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL})
