"""/console serves the console's own files (app/console/static) with a strict Content-Security-Policy:
every script and style sheet from this origin, no CDN, no inline script; only shipped files (no path
from a request reaches the file system); the page works with CORS_ORIGINS set and without a token.
The flows themselves run in a real browser: tests/system/test_console_browser.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from app.config import Settings
from app.console.routes import ASSETS, CONTENT_SECURITY_POLICY, STATIC_DIR
from app.main import create_app
from tests.support.apps import app_client
from tests.support.paths import REPO

IMPORT_RE = re.compile(r"""^\s*import\s[^;]*?from\s+["']([^"']+)["']""", re.MULTILINE)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_handlers: list[str] = []
        self._script_src: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name) and not str(found[name]).startswith("#"):
                self.urls.append(str(found[name]))
        self.inline_handlers += [name for name in found if name.startswith("on")]
        if tag == "script":
            self._script_src = found.get("src")

    def handle_data(self, data: str) -> None:
        if self._script_src is None and self.lasttag == "script" and data.strip():
            self.inline_scripts += 1


def directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


async def test_the_console_page_is_served_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/console")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/console/"
    page = await client.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = directives(page.headers["content-security-policy"])
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no CDN
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    tags = Tags()
    tags.feed(page.text)
    assert tags.inline_scripts == 0 and tags.inline_handlers == []
    assert set(tags.urls) == {"favicon.svg", "console.css", "js/app.js"}


async def test_every_file_the_page_loads_is_shipped_and_local(client: httpx.AsyncClient) -> None:
    """From index.html through every ES module import: each answers 200 with its type and the CSP, and
    no file names another host (no CDN, fonts or analytics: the console works offline)."""
    pending = ["/console/"]
    seen: set[str] = set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        text = response.text
        # (an SVG's xmlns is a name, not something loaded)
        assert not re.search(r"https?://", text.replace('xmlns="http://www.w3.org/2000/svg"', "")), url
        if url.endswith(".js"):
            assert response.headers["content-type"] == "text/javascript; charset=utf-8"
            assert "eval(" not in text and "new Function" not in text and "innerHTML" not in text, url
            pending += [urljoin(url, target) for target in IMPORT_RE.findall(text)]
        elif url.endswith("/"):
            tags = Tags()
            tags.feed(text)
            pending += [urljoin(url, target) for target in tags.urls]
    modules = {f"/console/{name}" for name in ASSETS if name.endswith(".js")}
    assert modules <= seen, modules - seen  # every shipped module is reachable from the page
    assert {urlsplit(url).netloc for url in seen} == {""}


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope.js",
        "/console/../app/main.py",
        "/console/%2e%2e/routes.py",
        "/console/..%2Froutes.py",
        "/console/js/../../routes.py",
        "/console/js",
        "/console/%00",
        "/console/js/app.js%00.html",
        "/console/%ED%B3%BF",  # a lone surrogate, UTF-8 encoded
    ],
)
async def test_only_shipped_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in (404, 422), response.text  # 422: the edge refuses a path that is not UTF-8
    assert b"import" not in response.content  # nothing of a source file
    assert "routes.py" not in {p.name for p in STATIC_DIR.rglob("*")}


async def test_cors_and_auth_middlewares_leave_the_console_alone(settings: Settings) -> None:
    """With CORS_ORIGINS set, a request carrying an Origin and even a bogus token still gets the files
    with their CSP (the page needs no credential; the API calls it makes carry the token)."""
    cors = settings.model_copy(update={"cors_origins": "http://elsewhere.example"})
    async with app_client(cors) as http:
        for url in ("/console/", "/console/js/api.js", "/console/console.css"):
            response = await http.get(
                url, headers={"Origin": "http://elsewhere.example", "Authorization": "Bearer not-a-token"}
            )
            assert response.status_code == 200, (url, response.text)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        head = await http.head("/console/")
        assert head.status_code in (200, 405)


async def test_the_page_is_told_where_the_api_is(settings: Settings) -> None:
    """API_PREFIX and a proxy's root_path reach the page (its scripts call the API there)."""
    moved = settings.model_copy(update={"api_prefix": "/kv-api"})
    async with app_client(moved) as http:
        page = await http.get("/console/")
        assert '<meta name="kvstore-api" content="/kv-api">' in page.text
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert (await http.get("/console/index.html")).text == page.text
    # Behind a proxy that strips a prefix (uvicorn --root-path /store): the API is under it too.
    transport = httpx.ASGITransport(app=create_app(settings), root_path="/store")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        behind = await http.get("/console/")
        assert '<meta name="kvstore-api" content="/store/api/v1">' in behind.text
        assert (await http.get("/console")).headers["location"] == "/store/console/"


def test_readme_shows_screenshots_the_browser_test_takes() -> None:
    """Every docs/console/*.png README.md shows is committed and taken by tests/system/test_console_browser.py."""
    readme = (REPO / "README.md").read_text()
    shown = set(re.findall(r"\(docs/console/([\w-]+)\.png\)", readme))
    assert len(shown) >= 6
    browser_test = (REPO / "tests/system/test_console_browser.py").read_text()
    taken = set(re.findall(r'shot\(page, "([\w-]+)"\)', browser_test))
    assert shown <= taken, shown - taken
    assert all((REPO / "docs" / "console" / f"{name}.png").is_file() for name in shown)
