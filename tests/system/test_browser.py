"""A page on another origin uses the API from headless Chromium (Playwright), over real HTTP to the API
served by uvicorn with CORS_ORIGINS naming the page's origin: it logs in, reads and writes a key
(reading ETag and the RateLimit-* headers) with an API key, gets a 403 problem it can read (a key
without the scope), follows an EventSource
that receives a write, uploads a file through a presigned PUT and reads it back through a presigned
GET (Range too), and sees an expired URL refused. A page on an origin CORS_ORIGINS does not name
is blocked by the browser.

No Chromium: a warning and a skip on a developer's machine, a failure under CI=true
(tests/support/browser.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import CHROMIUM_ENV, chromium, find_chromium, missing_browser, static_site
from tests.support.tenants import register_sync

USERNAME = "browser"
FILE_BYTES = "Grüße aus dem Browser — presigned upload ✓\n".encode() * 50


# -- step 1: the credentials the page calls the API with -------------------------------------------
# API keys, made through the API by the user (outside the browser, as a developer would make one for a
# page): one for everything the page does, one that may only read keys (for the 403).

PAGE_SCOPES = ["kv:read", "kv:write", "kv:watch", "objects:read", "objects:write", "admin"]


def browser_login(api: str, user_headers: dict[str, str], scopes: list[str] = PAGE_SCOPES) -> str:
    response = httpx.post(
        f"{api}/api/v1/auth/api-keys", json={"name": "browser page", "scopes": scopes}, headers=user_headers, timeout=10
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def auth_headers(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def watch_query(credential: str) -> str:
    return f"access_token={credential}"


# -- what the page does -------------------------------------------------------------------------------

FETCH = """async ([url, init]) => {
    const response = await fetch(url, init);
    const headers = {};
    response.headers.forEach((value, name) => { headers[name] = value; });
    return {status: response.status, headers, text: await response.text()};
}"""


def fetch(page: Any, url: str, **init: Any) -> dict[str, Any]:
    """``fetch(url, init)`` in the page: status, the headers the page can read, the body as text."""
    result: dict[str, Any] = page.evaluate(FETCH, [url, init])
    return result


@pytest.mark.subprocess
def test_a_page_on_another_origin_uses_the_api(tmp_path: Path, redis_server, api_process) -> None:
    with chromium() as open_page:  # first: without a browser there is nothing to start
        data, queue = redis_server("data"), redis_server("queue", appendonly=False)
        with static_site(tmp_path / "site") as page_origin, static_site(tmp_path / "other") as foreign_origin:
            api = api_process(
                {
                    "REDIS_URL": data.url,
                    "HUEY_REDIS_URL": queue.url,
                    "SECRET_KEY": os.environ["SECRET_KEY"],
                    "CORS_ORIGINS": page_origin,
                }
            ).url
            user = register_sync(api, USERNAME)
            run_the_page(open_page(page_origin), api, tmp_path, user["headers"])
            blocked = open_page(foreign_origin).evaluate(
                "async (url) => { try { await fetch(url); return 'read'; } catch (e) { return e.name; } }",
                f"{api}/api/v1/health/live",
            )
            assert blocked == "TypeError"  # the browser refuses the answer to a page CORS_ORIGINS does not name


def test_without_a_browser_developers_are_warned_and_ci_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, "/nonexistent/chromium")
    assert find_chromium() is None
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: the browser test must run"):
        missing_browser("no Chromium found")
    monkeypatch.delenv("CI")
    with (
        pytest.warns(UserWarning, match="browser test not run: no Chromium found"),
        pytest.raises(pytest.skip.Exception),
    ):
        missing_browser("no Chromium found")


def run_the_page(page: Any, api: str, tmp_path: Path, user_headers: dict[str, str]) -> None:
    base = f"{api}/api/v1"
    credential = browser_login(api, user_headers)
    assert credential.startswith("kvs_")
    auth = auth_headers(credential)
    json_auth = {**auth, "Content-Type": "application/json"}

    # A key: written and read with a preflighted fetch; ETag, RateLimit-* and X-Request-ID readable.
    put = fetch(page, f"{base}/kv/greeting", method="PUT", headers=json_auth, body='{"value": "hello"}')
    assert put["status"] == 201, put
    got = fetch(page, f"{base}/kv/greeting", headers={**auth, "X-Request-ID": "from-the-page"})
    assert got["status"] == 200, got
    assert '"hello"' in got["text"]
    assert got["headers"]["etag"] == put["headers"]["etag"]
    assert got["headers"]["x-request-id"] == "from-the-page"
    assert int(got["headers"]["ratelimit-remaining"]) >= 0
    cas = fetch(page, f"{base}/kv/greeting", method="PUT", headers={**json_auth, "If-Match": '"99"'}, body="{}")
    assert cas["status"] in (412, 422), cas  # a refusal the page can read as problem+json
    assert cas["headers"]["content-type"] == "application/problem+json"

    # A 403 the page can read: a write with a key that may only read keys.
    reader = auth_headers(browser_login(api, user_headers, ["kv:read"]))
    assert fetch(page, f"{base}/kv/greeting", headers=reader)["status"] == 200
    forbidden = fetch(page, f"{base}/kv/greeting", method="PUT", headers={**reader, "Content-Type": "application/json"},
                      body='{"value": "nope"}')  # fmt: skip
    assert forbidden["status"] == 403, forbidden
    assert '"code":"insufficient_scope"' in forbidden["text"]
    assert forbidden["headers"]["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    created = fetch(page, f"{base}/objects/buckets", method="POST", headers=json_auth, body='{"name": "files"}')
    assert created["status"] == 201, created

    # An EventSource (token in the URL) receives a write made by the page.
    event = page.evaluate(
        """async ([watchUrl, putUrl, headers]) => {
            const source = new EventSource(watchUrl);
            try {
                await new Promise((resolve, reject) => {
                    source.onopen = resolve;
                    source.onerror = () => reject(new Error("EventSource could not open"));
                });
                const received = new Promise((resolve) => {
                    source.addEventListener("put", (e) => resolve({id: e.lastEventId, data: JSON.parse(e.data)}));
                });
                const put = await fetch(putUrl, {method: "PUT", headers, body: '{"value": {"seen": true}}'});
                if (put.status !== 201) throw new Error(`put answered ${put.status}`);
                return await Promise.race([
                    received,
                    new Promise((_, reject) => setTimeout(() => reject(new Error("no event in 10 s")), 10000)),
                ]);
            } finally { source.close(); }
        }""",
        [f"{base}/kv/watch?key=watched&{watch_query(credential)}", f"{base}/kv/watched", json_auth],
    )
    assert event["data"]["key"] == "watched"
    assert event["data"]["value"] == {"seen": True}
    assert int(event["id"]) == event["data"]["revision"]

    # A file chosen in an <input type=file>, uploaded with a presigned PUT, read back with a presigned GET.
    upload = tmp_path / "notes.txt"
    upload.write_bytes(FILE_BYTES)
    page.set_input_files("#file", str(upload))
    put_url = presign(page, base, auth, "files", "notes.txt", method="PUT", content_type="text/plain",
                      max_bytes=len(FILE_BYTES))["url"]  # fmt: skip
    stored = page.evaluate(
        """async (url) => {
            const file = document.getElementById("file").files[0];
            const response = await fetch(url, {method: "PUT", body: file, headers: {"Content-Type": file.type}});
            return {status: response.status, etag: response.headers.get("etag"), body: await response.json()};
        }""",
        put_url,
    )
    assert stored["status"] == 201, stored
    assert stored["body"]["size"] == len(FILE_BYTES)
    get_url = presign(page, base, auth, "files", "notes.txt", method="GET")["url"]
    read = page.evaluate(
        """async (url) => {
            const response = await fetch(url);
            const bytes = Array.from(new Uint8Array(await response.arrayBuffer()));
            const part = await fetch(url, {headers: {Range: "bytes=0-4"}});
            return {status: response.status, bytes, etag: response.headers.get("etag"),
                    type: response.headers.get("content-type"), partStatus: part.status,
                    partRange: part.headers.get("content-range"),
                    part: Array.from(new Uint8Array(await part.arrayBuffer()))};
        }""",
        get_url,
    )
    assert read["status"] == 200
    assert bytes(read["bytes"]) == FILE_BYTES
    assert read["etag"] == stored["etag"]
    assert read["type"] == "text/plain"
    assert (read["partStatus"], bytes(read["part"])) == (206, FILE_BYTES[:5])
    assert read["partRange"] == f"bytes 0-4/{len(FILE_BYTES)}"
    assert httpx.get(get_url).content == FILE_BYTES  # the same URL outside the browser

    # A URL past its expiry is refused.
    short = presign(page, base, auth, "files", "notes.txt", method="GET", expires_in=1)
    expired = page.evaluate(
        """async (url) => {
            await new Promise((resolve) => setTimeout(resolve, 2100));
            const response = await fetch(url);
            return {status: response.status, body: await response.json()};
        }""",
        short["url"],
    )
    assert expired["status"] == 403
    assert expired["body"]["code"] == "presigned_url_expired"


def presign(page: Any, base: str, auth: dict[str, str], bucket: str, name: str, **body: Any) -> dict[str, Any]:
    """POST .../presign from the page: the answer (url, method, expires_at)."""
    answer = fetch(
        page,
        f"{base}/objects/buckets/{bucket}/objects/{name}/presign",
        method="POST",
        headers={**auth, "Content-Type": "application/json"},
        body=json.dumps(body),
    )
    assert answer["status"] == 200, answer
    result: dict[str, Any] = json.loads(answer["text"])
    return result
