"""``/console``: the console's files from ``static/``, each with a strict Content-Security-Policy.

Only the files found in ``static/`` when the process starts are served (a fixed table of names, so no
path from a request ever reaches the file system); anything else under ``/console/`` is a 404. The
page is one document (``index.html``) whose views are chosen by the URL's fragment (``#/keys/...``),
so no server-side fallback route is needed."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# Scripts and styles only from this origin (no inline script, no eval, no CDN), fetch/EventSource only to
# this origin, no framing, no plugins, forms and <base> pinned.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidated on every load (a new release is seen at once); the ETag makes that a 304.
    "Cache-Control": "no-cache",
}


def asset_table(root: Path = STATIC_DIR) -> dict[str, tuple[Path, str]]:
    """Every servable file under ``root``: its URL name (``js/app.js``) → (path, media type)."""
    table: dict[str, tuple[Path, str]] = {}
    for path in sorted(root.rglob("*")):
        media_type = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            table[path.relative_to(root).as_posix()] = (path, media_type)
    return table


ASSETS = asset_table()
API_PLACEHOLDER = "/api/v1"
"""What index.html names as the API's path (``<meta name="kvstore-api">``); replaced when served by the
path this app answers on: the ASGI root_path (behind a proxy's prefix) + API_PREFIX."""
INDEX_HTML = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

router = APIRouter(include_in_schema=False)


def _file(name: str) -> Response:
    entry = ASSETS.get(name)
    if entry is None:
        return Response(b"not found\n", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
    path, media_type = entry
    return FileResponse(path, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/console")
async def console_root(request: Request) -> RedirectResponse:
    """The console lives at ``/console/`` (its relative asset URLs need the slash)."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/console/", status_code=308)


@router.get("/console/")
async def console_index(request: Request) -> Response:
    """The console's single page, told where the API is (its scripts are static files)."""
    api = f"{request.scope.get('root_path', '')}{request.app.state.settings.api_prefix}"
    page = INDEX_HTML.replace(f'content="{API_PLACEHOLDER}"', f'content="{escape(api, quote=True)}"', 1)
    return Response(page, media_type=MEDIA_TYPES[".html"], headers=SECURITY_HEADERS)


@router.get("/console/{name:path}")
async def console_asset(request: Request, name: str) -> Response:
    """A file of the console (script, style sheet, icon); 404 for anything not shipped."""
    if name == "index.html":
        return await console_index(request)
    return _file(name)
