"""kvctl objects presign: the request it sends, what it prints, its refusals; and end to end, a URL
it printed used with no token against the API served by uvicorn."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.api_process import ApiProcess
from tests.support.kvctl_fakes import problem
from tests.support.kvctl_process import registered

ANSWER = {"url": "http://kv.test/api/v1/objects/buckets/b/objects/x?signature=abc", "method": "GET",
          "expires_at": "2030-01-01T00:00:00Z"}  # fmt: skip


@pytest.mark.usefixtures("logged_in")
def test_presign_get_prints_the_url_alone_on_stdout(kvctl) -> None:
    result = kvctl(["objects", "presign", "b", "dir/a b.txt"], lambda r: httpx.Response(200, json=ANSWER))
    assert result.code == 0, result.err
    (request,) = result.requests
    assert request.method == "POST"
    assert request.url.raw_path == b"/api/v1/objects/buckets/b/objects/dir%2Fa%20b.txt/presign"
    assert request.headers["Authorization"] == "Bearer access-1"
    assert result.bodies() == [{"method": "GET", "expires_in": 3600}]
    assert result.out == ANSWER["url"] + "\n"
    assert "2030-01-01" in result.err


@pytest.mark.usefixtures("logged_in")
def test_presign_put_sends_its_options(kvctl) -> None:
    result = kvctl(
        ["--json", "objects", "presign", "b", "x", "--method", "put", "--expires-in", "60",
         "--content-type", "image/png", "--max-bytes", "1048576"],
        lambda r: httpx.Response(200, json={**ANSWER, "method": "PUT"}),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.bodies() == [{"method": "PUT", "expires_in": 60, "content_type": "image/png", "max_bytes": 1048576}]
    assert json.loads(result.out)["method"] == "PUT"


@pytest.mark.usefixtures("logged_in")
def test_presign_refuses_bad_options_before_sending(kvctl) -> None:
    for argv in (
        ["objects", "presign", "b", "x", "--method", "DELETE"],
        ["objects", "presign", "b", "x", "--expires-in", "0"],
        ["objects", "presign", "b", "x", "--expires-in", "604801"],
        ["objects", "presign", "b", "x", "--expires-in", "\u0661\u0662"],
        ["objects", "presign", "b", "x", "--max-bytes", "-5"],
        ["objects", "presign", "b"],
    ):
        with pytest.raises(SystemExit) as exited:
            kvctl(argv)
        assert exited.value.code == 2, argv


@pytest.mark.usefixtures("logged_in")
def test_presign_reports_the_apis_refusal(kvctl) -> None:
    result = kvctl(
        ["objects", "presign", "b", "x", "--expires-in", "604800"],
        lambda r: problem(422, "validation_error", "expires_in must be at most 86400 s"),
    )
    assert result.code == 1
    assert "expires_in must be at most 86400 s" in result.err
    assert result.out == ""


@pytest.mark.subprocess
def test_presigned_urls_from_kvctl_work_without_a_token(api: ApiProcess, tmp_path: Path) -> None:
    cli = registered(api.url, tmp_path / "kvctl" / "config.json", f"cli{uuid.uuid4().hex[:12]}")
    token = cli("token").out.strip()
    created = httpx.post(
        f"{api.url}/api/v1/objects/buckets", json={"name": "files"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    put = cli("objects", "presign", "files", "a/b.txt", "--method", "PUT", "--content-type", "text/plain")
    assert put.code == 0, put.err
    uploaded = httpx.put(put.out.strip(), content=b"hello", headers={"Content-Type": "text/plain"})
    assert uploaded.status_code == 201, uploaded.text
    get = cli("objects", "presign", "files", "a/b.txt", "--expires-in", "60")
    assert get.code == 0, get.err
    assert httpx.get(get.out.strip()).content == b"hello"
    assert cli("logout").code == 0
    deadline = time.monotonic() + 1.0
    while (refused := httpx.get(get.out.strip())).status_code == 200:  # the session ends within a second
        assert time.monotonic() < deadline, "the URL still works 1 s after logout"
        time.sleep(0.02)
    assert (refused.status_code, refused.json()["code"]) == (403, "presigned_url_revoked")
