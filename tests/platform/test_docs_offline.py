"""/docs and /redoc work without internet access: every script, stylesheet and icon they load is
served by the API itself (app/platform/http/docs.py), and each of those URLs answers with the asset."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest


class References(HTMLParser):
    """Every URL an HTML page makes the browser load: src and href attributes, and string literals
    in inline scripts that look like URLs (Swagger UI's spec URL and redirect URL are set there)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def references(html: str) -> References:
    parser = References()
    parser.feed(html)
    return parser


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/favicon.png"}),
        ("/redoc", {"/docs/assets/redoc.standalone.js", "/docs/assets/favicon.png"}),
    ],
)
async def test_docs_pages_load_only_local_assets_and_each_answers(
    client: httpx.AsyncClient, page: str, assets: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    found = references(response.text)
    assert set(found.urls) == assets, found.urls
    for url in found.urls:
        assert not urlsplit(url).netloc and not urlsplit(url).scheme, url  # same origin
    for script in found.scripts:  # no CDN, no Google font, no validator badge in the inline code
        assert "http://" not in script and "https://" not in script, script
    for url in found.urls:
        asset = await client.get(urljoin(page, url))
        assert asset.status_code == 200, url
        kind = asset.headers["content-type"]
        if url.endswith(".js"):
            assert kind.startswith("text/javascript") and len(asset.content) > 100_000
            # The real bundle, not an error page: Swagger UI's or ReDoc's own code.
            assert ("SwaggerUIBundle" if "swagger" in url else "Redoc") in asset.text
        elif url.endswith(".css"):
            assert kind.startswith("text/css") and ".swagger-ui" in asset.text
        else:
            assert kind == "image/png" and asset.content.startswith(b"\x89PNG")


async def test_swagger_ui_points_at_the_schema_and_the_oauth2_redirect(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert "url: '/openapi.json'" in html
    assert "/docs/oauth2-redirect" in html and '"validatorUrl": null' in html
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and "oauth2" in redirect.text.lower()
    assert (await client.get("/openapi.json")).status_code == 200


async def test_an_unknown_asset_is_a_problem_404_and_no_file_outside_the_assets_is_served(
    client: httpx.AsyncClient,
) -> None:
    for name in ("nope.js", "..%2F__init__.py", "%2E%2E%2Fcore.py", "core.py"):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"] == "application/problem+json"
