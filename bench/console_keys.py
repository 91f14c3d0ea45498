"""The console's key browser on a large bucket: N keys (100,000 by default) written through the API,
then headless Chromium (Debian's, driven by Playwright) opens the bucket's page and pages through it.

Reports, in milliseconds from the click to the rendered table: opening the bucket page (the first page
of 50 keys, the bucket, the live pane's stream), the next page (the API's cursor), a tag filter and a
prefix filter. The console asks for one page at a time, so these stay flat as the bucket grows.

    python -m bench.console_keys [--keys 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from app.platform.embedded_redis import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("KVSTORE_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "Secret123"
BATCH = 1000


def load(url: str, keys: int) -> None:
    body = {"username": "bench", "email": "bench@example.com", "password": PASSWORD}
    token = httpx.post(f"{url}/api/v1/auth/register", json=body, timeout=30).json()["access_token"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        assert client.post("/api/v1/kv/buckets", json={"name": "big"}).status_code == 201
        for start in range(0, keys, BATCH):
            items = [
                {"key": f"k:{n:07d}", "value": {"n": n}, "tags": {"group": str(n % 10)}}
                for n in range(start, min(start + BATCH, keys))
            ]
            response = client.post("/api/v1/kv/buckets/big/keys/batch", json={"items": items})
            assert response.status_code in (200, 201), response.text


def timed(page: object, action: Callable[[], None], done: Callable[[], bool]) -> float:
    started = time.perf_counter()
    action()
    while not done():
        if time.perf_counter() - started > 30:
            raise RuntimeError("the page did not show the expected rows within 30 s")
        page.wait_for_timeout(2)  # type: ignore[attr-defined]
    return (time.perf_counter() - started) * 1000


def browse(url: str, keys: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{url}/console/")
        page.fill("#login-username", "bench")
        page.fill("#login-password", PASSWORD)
        page.press("#login-password", "Enter")
        page.wait_for_selector("#buckets tr[data-bucket=big]")

        def first_row() -> str:
            rows = page.locator("#keys tbody tr[data-key]")
            return str(rows.first.get_attribute("data-key")) if rows.count() else ""

        def search() -> None:
            page.click("#main form[role=search] button")

        results = {
            "open the bucket page": timed(
                page, lambda: page.click("#buckets a:has-text('big')"), lambda: first_row() == "k:0000000"
            ),
            "next page": timed(page, lambda: page.click("#next-page"), lambda: first_row() == "k:0000050"),
        }
        page.fill("#tag-filter", "group:3")
        results["tag filter"] = timed(page, search, lambda: first_row() == "k:0000003")
        page.fill("#tag-filter", "")
        last = f"k:{keys - 1:07d}"
        page.fill("#key-prefix", last[:-1])  # the last (up to) 10 keys
        results["prefix filter"] = timed(page, search, lambda: first_row() == f"{last[:-1]}0")
        browser.close()
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000, help="at least 100")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = RedisProcess(Path(tmp) / "data", appendonly=False).start()
        queue = RedisProcess(Path(tmp) / "queue", appendonly=False).start()
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": data.url,
            "HUEY_REDIS_URL": queue.url,
            "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
            "ENVIRONMENT": "test",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_SECOND": "0",
        }
        command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log"]
        api = subprocess.Popen(command, cwd=ROOT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            started = time.perf_counter()
            load(url, args.keys)
            print(f"{args.keys} keys written in {time.perf_counter() - started:.1f} s")
            for what, ms in browse(url, args.keys).items():
                print(f"{what}: {ms:.0f} ms")
        finally:
            api.terminate()
            api.wait(30)
            data.stop()
            queue.stop()


if __name__ == "__main__":
    main()
