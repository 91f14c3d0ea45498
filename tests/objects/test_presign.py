"""Presigned object URLs: POST .../presign, then GET/HEAD/PUT of the object with no Authorization
header. Refused (403 problem+json): expired, tampered, replayed on another object, bucket, tenant or
method, a session that ended; a PUT over max_bytes is 413, one with another Content-Type 403.
Range and conditional GETs, quotas, rate limits and the audit trail work as on the normal route."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from app.objects.presign import Grant
from app.platform.logging import redact
from tests.support.api_keys import API_KEYS, create_key, key_headers
from tests.support.apps import app_client
from tests.support.objects import BUCKET, CHUNK, object_url, payload, put_ok, stream_body
from tests.support.presign import presign, presigned_url, query, raw_query, with_path, with_query
from tests.support.redis_commands import command_name, sent_commands
from tests.support.tenants import PASSWORD, bearer, register

pytestmark = pytest.mark.contract

DATA = payload(2 * CHUNK + 123, seed=5)


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
async def obj(client, tenant, bucket) -> dict:
    return await put_ok(client, tenant, "docs/report.bin", DATA)


# -- creating URLs ---------------------------------------------------------------------------------


async def test_presign_answers_url_method_and_expiry(client, tenant, bucket) -> None:
    before = time.time()
    response = await presign(client, tenant["headers"], "docs/report.bin", method="PUT", expires_in=600)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"url", "method", "expires_at"}
    assert body["method"] == "PUT"
    assert body["url"].startswith(f"http://testserver{object_url('docs/report.bin')}?")
    params = query(body["url"])
    assert params["tenant"] == tenant["tenant_id"]
    assert params["cred"].startswith("s:") and len(params["cred"]) == 34
    assert int(params["expires"]) - int(params["issued"]) == 600
    assert len(params["signature"]) == 64
    assert abs(int(params["expires"]) - (before + 600)) < 5


async def test_presign_refuses_bad_requests(client, tenant, bucket) -> None:
    headers = tenant["headers"]
    problem(await presign(client, {}, "a"), 401)
    for body in (
        {"method": "DELETE"},
        {"method": "get"},
        {"expires_in": 0},
        {"expires_in": 604_801},
        {"expires_in": 10**30},
        {"expires_in": True},
        {"expires_in": "60"},
        {"content_type": "text/plain"},  # GET: PUT-only fields
        {"method": "GET", "max_bytes": 10},
        {"method": "PUT", "max_bytes": 0},
        {"method": "PUT", "max_bytes": -1},
        {"method": "PUT", "max_bytes": 2**70},
        {"method": "PUT", "content_type": "text/plain\x00"},
        {"method": "PUT", "content_type": "t\u00e9xt/plain"},
        {"method": "PUT", "content_type": ""},
        {"method": "PUT", "extra": 1},
    ):
        response = await client.post(object_url("a") + "/presign", json={"method": "GET", **body}, headers=headers)
        problem(response, 422)
    problem(await presign(client, headers, "a%0Ab"), 422)  # names follow the object rules (no control characters)
    problem(await presign(client, headers, "a", bucket="Bad_Bucket"), 422)
    raw = await client.post(
        object_url("a") + "/presign",
        content=b'{"method": "GET", "expires_in": 1' + b"0" * 5000 + b"}",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert 400 <= raw.status_code < 500


async def test_expires_in_is_capped_by_the_refresh_token_lifetime(settings, bucket) -> None:
    async with app_client(settings.model_copy(update={"refresh_token_expire_days": 1})) as http:
        alice = await register(http, "carol")
        problem(await presign(http, bearer(alice), "a", expires_in=86_401), 422)
        assert (await presign(http, bearer(alice), "a", expires_in=86_400)).status_code == 200


# -- using them ------------------------------------------------------------------------------------


async def test_presigned_get_and_head_need_no_authorization(client, tenant, obj) -> None:
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.content == DATA
    assert response.headers["etag"] == obj["etag"]
    head = await client.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(DATA))
    missing = await presigned_url(client, tenant["headers"], "nothing-here")
    problem(await client.get(missing), 404, "object_not_found")


async def test_presigned_put_stores_the_body(client, tenant, bucket) -> None:
    url = await presigned_url(
        client, tenant["headers"], "up/load.txt", method="PUT", content_type="text/plain", max_bytes=len(DATA)
    )
    response = await client.put(url, content=DATA, headers={"Content-Type": "text/plain", "X-Object-Meta-By": "bob"})
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(DATA)
    stored = await client.get(object_url("up/load.txt"), headers=tenant["headers"])
    assert stored.content == DATA
    assert stored.headers["content-type"] == "text/plain"
    assert stored.headers["x-object-meta-by"] == "bob"
    again = await client.put(url, content=b"v2", headers={"Content-Type": "text/plain"})  # until it expires
    assert again.status_code == 200, again.text


async def test_range_and_conditional_gets_work_on_presigned_urls(client, tenant, obj) -> None:
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    part = await client.get(url, headers={"Range": f"bytes={CHUNK - 3}-{CHUNK + 3}"})
    assert part.status_code == 206
    assert part.content == DATA[CHUNK - 3 : CHUNK + 4]
    assert part.headers["content-range"] == f"bytes {CHUNK - 3}-{CHUNK + 3}/{len(DATA)}"
    suffix = await client.get(url, headers={"Range": "bytes=-10"})
    assert suffix.status_code == 206 and suffix.content == DATA[-10:]
    assert (await client.get(url, headers={"Range": f"bytes={len(DATA)}-"})).status_code == 416
    etag, modified = part.headers["etag"], part.headers["last-modified"]
    assert (await client.get(url, headers={"If-None-Match": etag})).status_code == 304
    assert (await client.get(url, headers={"If-Modified-Since": modified})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": '"other"'})).status_code == 200
    assert (await client.get(url, headers={"If-Match": '"other"'})).status_code == 412
    stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == DATA  # If-Range no longer holds: the whole object
    fresh = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == DATA[:10]


# -- refusals --------------------------------------------------------------------------------------


async def test_expired_url_is_refused(app, client, tenant, obj) -> None:
    now = int(time.time())
    cred = query(await presigned_url(client, tenant["headers"], "docs/report.bin"))["cred"]
    grant = Grant("GET", tenant["tenant_id"], BUCKET, "docs/report.bin", cred, now - 120, now - 1)
    url = f"{object_url('docs/report.bin')}?{app.state.presigner.query(grant)}"
    problem(await client.get(url), 403, "presigned_url_expired")
    live = Grant("GET", tenant["tenant_id"], BUCKET, "docs/report.bin", cred, now, now + 60)
    assert (await client.get(f"{object_url('docs/report.bin')}?{app.state.presigner.query(live)}")).status_code == 200


async def test_a_url_expires_on_time(client, tenant, obj) -> None:
    url = await presigned_url(client, tenant["headers"], "docs/report.bin", expires_in=1)
    expires = int(query(url)["expires"])
    if time.time() < expires:
        assert (await client.get(url)).status_code == 200
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    problem(await client.get(url), 403, "presigned_url_expired")


async def test_tampered_urls_are_refused(client, tenant, obj) -> None:
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    put_url = await presigned_url(
        client, tenant["headers"], "docs/report.bin", method="PUT", max_bytes=10, content_type="text/plain"
    )
    signature = query(url)["signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    expires = str(int(query(url)["expires"]) + 3600)
    for method, tampered in (
        ("GET", with_query(url, signature=flipped)),
        ("GET", with_query(url, signature=signature.upper())),
        ("GET", with_query(url, expires=expires)),
        ("GET", with_query(url, issued=str(int(query(url)["issued"]) - 1))),
        ("GET", with_query(url, cred="s:" + "0" * 32)),
        ("GET", with_query(url, cred="k:some-key")),
        ("GET", with_query(url, max_bytes="5")),
        ("PUT", with_query(put_url, max_bytes=None)),
        ("PUT", with_query(put_url, max_bytes="1000000")),
        ("PUT", with_query(put_url, content_type=None)),
        ("PUT", with_query(put_url, content_type="text/html")),
    ):
        response = await client.request(
            method, tampered, content=b"x" if method == "PUT" else None, headers={"Content-Type": "text/plain"}
        )
        problem(response, 403, "presigned_url_invalid")
    for missing in ("tenant", "cred", "issued", "expires", "signature"):
        response = await client.get(with_query(url, **{missing: None}))
        if missing == "signature":  # no signature: an ordinary request without a token
            problem(response, 401)
        else:
            problem(response, 403, "presigned_url_invalid")


async def test_url_of_one_object_opens_no_other(client, tenant, obj) -> None:
    await put_ok(client, tenant, "docs/other.bin", b"other")
    await client.post("/api/v1/objects/buckets", json={"name": "second"}, headers=tenant["headers"])
    await put_ok(client, tenant, "docs/report.bin", b"second bucket", bucket="second")
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    for path in (
        object_url("docs/other.bin"),
        object_url("docs/report.bin", bucket="second"),
        object_url("docs/report.bin2"),
        object_url("docs"),
    ):
        problem(await client.get(with_path(url, path)), 403, "presigned_url_invalid")
    # Sub-resources take a token only: the signature is no credential there.
    problem(await client.get(with_path(url, object_url("docs/report.bin") + "/verify")), 401)


async def test_url_of_one_tenant_opens_nothing_of_another(client, tenant, obj) -> None:
    bob = await register(client, "bob")
    await client.post("/api/v1/objects/buckets", json={"name": BUCKET}, headers=bearer(bob))
    await put_ok(client, {"headers": bearer(bob)}, "docs/report.bin", b"bob's")
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    problem(await client.get(with_query(url, tenant=bob["tenant_id"])), 403, "presigned_url_invalid")
    # Bob's token next to Alice's URL: the URL decides, and it opens Alice's object only.
    response = await client.get(url, headers=bearer(bob))
    assert response.content == DATA
    bob_url = await presigned_url(client, bearer(bob), "docs/report.bin")
    assert (await client.get(bob_url, headers=tenant["headers"])).content == b"bob's"


async def test_a_url_works_for_its_method_only(client, tenant, obj) -> None:
    get_url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    put_url = await presigned_url(client, tenant["headers"], "docs/report.bin", method="PUT")
    problem(await client.put(get_url, content=b"overwrite"), 403, "presigned_url_invalid")
    problem(await client.get(put_url), 403, "presigned_url_invalid")
    assert (await client.head(put_url)).status_code == 403
    problem(await client.delete(get_url), 401)  # DELETE takes a token only
    problem(await client.delete(put_url), 401)
    problem(await client.post(get_url.replace("?", "/uploads?")), 401)
    stored = await client.get(object_url("docs/report.bin"), headers=tenant["headers"])
    assert stored.content == DATA


async def test_put_over_max_bytes_is_413_and_stores_nothing(client, tenant, bucket) -> None:
    url = await presigned_url(client, tenant["headers"], "capped", method="PUT", max_bytes=1000)
    problem(await client.put(url, content=b"x" * 1001), 413, "payload_too_large")
    problem(await client.put(url, content=stream_body(b"x" * 50_000, piece=700)), 413, "payload_too_large")
    problem(await client.get(object_url("capped"), headers=tenant["headers"]), 404)
    assert (await client.put(url, content=b"x" * 1000)).status_code == 201
    assert (await client.put(url, content=stream_body(b"y" * 1000, piece=300))).status_code == 200


async def test_put_with_another_content_type_is_refused(client, tenant, bucket) -> None:
    url = await presigned_url(client, tenant["headers"], "typed", method="PUT", content_type="image/png")
    problem(await client.put(url, content=b"png", headers={"Content-Type": "text/html"}), 403, "presigned_url_invalid")
    problem(await client.put(url, content=b"png"), 403, "presigned_url_invalid")  # httpx sends none
    assert (await client.put(url, content=b"png", headers={"Content-Type": "IMAGE/PNG"})).status_code == 201


async def test_hostile_query_values_are_4xx(client, tenant, obj) -> None:
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    hostile = [
        with_query(url, expires="9" * 5000),
        with_query(url, expires="\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663"),  # Arabic-Indic digits
        with_query(url, expires="-1"),
        with_query(url, issued=""),
        with_query(url, tenant="00000000-0000-0000-0000-00000000000\u0661"),
        with_query(url, tenant="not-a-uuid\x00"),
        with_query(url, cred="s:\x00"),
        raw_query(url, "signature=" + "%ED%A0%80" * 64),
        with_query(url, signature="g" * 64),
        with_query(url, max_bytes="1" * 400),
        with_query(url, content_type="text/plain\x00"),
        raw_query(url, "signature=%ED%A0%80"),  # a lone surrogate, percent-encoded
        raw_query(url, "expires=%00"),
        raw_query(url, "tenant=%FF%FE"),
        raw_query(url, "signature=" + "a" * 64),  # repeated
        with_query(url, content_type="x" * 10_000),
    ]
    for target in hostile:
        response = await client.get(target)
        assert 400 <= response.status_code < 500, (target[:200], response.status_code, response.text[:200])
        assert response.headers["content-type"] == "application/problem+json"


# -- the creator's credential, quotas, limits, audit ------------------------------------------------


async def logout(client: httpx.AsyncClient, tenant: dict) -> None:
    response = await client.post("/api/v1/auth/logout", json={"refresh_token": tenant["refresh_token"]})
    assert response.status_code == 204, response.text


async def refused_within_a_second(client: httpx.AsyncClient, url: str) -> httpx.Response:
    deadline = time.monotonic() + 1.0
    while (response := await client.get(url)).status_code == 200:
        assert time.monotonic() < deadline, "the URL still works 1 s after its session ended"
        await asyncio.sleep(0.02)
    return response


async def test_logout_refuses_the_sessions_urls_within_a_second(client, tenant, obj) -> None:
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    put_url = await presigned_url(client, tenant["headers"], "docs/new", method="PUT")
    login = (await client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})).json()
    other_url = await presigned_url(client, bearer(login), "docs/report.bin")  # another session's
    assert (await client.get(url)).status_code == 200
    await logout(client, tenant)
    problem(await refused_within_a_second(client, url), 403, "presigned_url_revoked")
    problem(await client.put(put_url, content=b"x"), 403, "presigned_url_revoked")
    assert (await client.get(other_url)).status_code == 200  # only that session's URLs end


async def test_password_change_and_logout_all_refuse_urls(client, tenant, obj) -> None:
    second = (await client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})).json()
    mine = await presigned_url(client, tenant["headers"], "docs/report.bin")
    theirs = await presigned_url(client, bearer(second), "docs/report.bin")
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "Another456"},
        headers=tenant["headers"],
    )
    assert changed.status_code == 204, changed.text
    problem(await refused_within_a_second(client, theirs), 403, "presigned_url_revoked")
    assert (await client.get(mine)).status_code == 200  # the caller's session goes on
    assert (await client.post("/api/v1/auth/logout-all", headers=tenant["headers"])).status_code == 204
    problem(await refused_within_a_second(client, mine), 403, "presigned_url_revoked")


async def test_old_url_of_an_ended_session_is_refused_after_the_memory_forgot_it(app, client, tenant, obj) -> None:
    """A URL signed longer ago than an access token lives is checked against Redis's record, which
    outlives the URL: the in-memory copy keeps an ended session only that long."""
    cred = query(await presigned_url(client, tenant["headers"], "docs/report.bin"))["cred"]
    now = int(time.time())
    issued = now - app.state.sessions.keep_ms // 1000 - 10
    grant = Grant("GET", tenant["tenant_id"], BUCKET, "docs/report.bin", cred, issued, now + 3600)
    url = f"{object_url('docs/report.bin')}?{app.state.presigner.query(grant)}"
    assert (await client.get(url)).status_code == 200
    await logout(client, tenant)
    problem(await client.get(url), 403, "presigned_url_revoked")  # Redis says so at once
    app.state.sessions._sessions.clear()  # as if the ended session had been pruned from memory
    problem(await client.get(url), 403, "presigned_url_revoked")


async def test_quota_applies_to_presigned_put(app, client, tenant, bucket) -> None:
    await app.state.usage_service.set_limits(tenant["tenant_id"], {"max_object_bytes": 5000})
    url = await presigned_url(client, tenant["headers"], "big", method="PUT")
    problem(await client.put(url, content=b"x" * 6000), 413, "quota_exceeded")
    assert (await client.put(url, content=b"x" * 4000)).status_code == 201


async def test_rate_limit_applies_to_presigned_requests(settings, bucket) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 0.5, "rate_limit_burst": 4})
    async with app_client(limited) as http:
        alice = await register(http, "dave")
        await http.post("/api/v1/objects/buckets", json={"name": "b"}, headers=bearer(alice))
        url = await presigned_url(http, bearer(alice), "x", bucket="b")
        statuses = [(await http.get(url)).status_code for _ in range(6)]
        assert statuses[-1] == 429, statuses
        refused = await http.get(url)
        problem(refused, 429)
        assert "retry-after" in refused.headers


async def test_presigned_put_is_audited_as_the_creator(immediate, app, client, tenant, bucket) -> None:
    url = await presigned_url(client, tenant["headers"], "audited", method="PUT")
    assert (await client.put(url, content=b"x")).status_code == 201
    await app.state.audit.flush()
    items = (await client.get("/api/v1/audit", headers=tenant["headers"])).json()["items"]
    put = next(e for e in items if e["key"] == "audited" and e["action"] != "objects.presign")
    assert put["action"] == "objects.put_presigned"
    assert put["username"] == "alice"
    assert put["tenant_id"] == tenant["tenant_id"]
    assert put["bucket"] == BUCKET
    assert any(e["action"] == "objects.presign" and e["username"] == "alice" for e in items)


async def test_signatures_never_reach_a_log_line(client, tenant, obj, caplog) -> None:
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    signature = query(url)["signature"]
    assert signature not in redact(f"GET {url} 200")
    with caplog.at_level(logging.DEBUG):
        await client.get(url)
        await client.get(with_query(url, signature="0" * 64))
    assert caplog.records
    for record in caplog.records:
        assert signature not in redact(record.getMessage())  # what the log formatters write
        if not record.name.startswith("httpx"):  # the test's own client logs its URLs
            assert signature not in record.getMessage()


async def test_presign_takes_a_small_json_body_only(client, tenant, bucket) -> None:
    url = object_url("a") + "/presign"
    problem(
        await client.post(url, content=b"method=GET", headers={**tenant["headers"], "Content-Type": "text/plain"}), 415
    )
    problem(
        await client.post(url, content=b'{"method": "GET"' + b" " * 2_000_000 + b"}", headers=tenant["headers"]), 413
    )
    # An object whose name ends in /presign is still an object: its PUT takes any body.
    put = await client.put(
        object_url("a/presign"), content=b"raw", headers={**tenant["headers"], "Content-Type": "x/y"}
    )
    assert put.status_code == 201, put.text


async def test_a_url_of_an_unknown_credential_is_refused(app, client, tenant, obj) -> None:
    """A signed URL whose API key does not exist (or a credential of no known kind) opens nothing."""
    now = int(time.time())
    for credential, code in (("k:0000000000000000", "presigned_url_revoked"), ("x:whatever", "presigned_url_invalid")):
        grant = Grant("GET", tenant["tenant_id"], BUCKET, "docs/report.bin", credential, now, now + 60)
        url = f"{object_url('docs/report.bin')}?{app.state.presigner.query(grant)}"
        problem(await client.get(url), 403, code)


# -- URLs made with an API key -------------------------------------------------------------------


async def test_an_api_key_presigns_within_its_scopes_bucket_and_prefix(client, tenant, obj) -> None:
    reader = await create_key(client, tenant["headers"], scopes=["objects:read"], buckets=[BUCKET], key_prefix="docs/")
    url = await presigned_url(client, key_headers(reader), "docs/report.bin")
    assert query(url)["cred"] == f"k:{reader['id']}"
    got = await client.get(url)
    assert got.status_code == 200 and got.content == DATA
    # No wider than the key: no PUT URL without objects:write, nothing outside its prefix or bucket.
    problem(await presign(client, key_headers(reader), "docs/new", method="PUT"), 403, "insufficient_scope")
    problem(await presign(client, key_headers(reader), "other/report.bin"), 403, "insufficient_scope")
    problem(
        await presign(client, key_headers(reader), "docs/report.bin", bucket="elsewhere"), 403, "insufficient_scope"
    )
    writer = await create_key(client, tenant["headers"], scopes=["objects:write"])
    put_url = await presigned_url(client, key_headers(writer), "docs/new", method="PUT", content_type="text/plain")
    stored = await client.put(put_url, content=b"from a key", headers={"Content-Type": "text/plain"})
    assert stored.status_code == 201, stored.text
    assert (await client.get(object_url("docs/new"), headers=tenant["headers"])).content == b"from a key"


async def test_revoking_the_api_key_refuses_its_urls_within_a_second(client, tenant, obj) -> None:
    key = await create_key(client, tenant["headers"], scopes=["objects:read"])
    url = await presigned_url(client, key_headers(key), "docs/report.bin")
    session_url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    assert (await client.get(url)).status_code == 200
    assert (await client.delete(f"{API_KEYS}/{key['id']}", headers=tenant["headers"])).status_code == 204
    problem(await refused_within_a_second(client, url), 403, "presigned_url_revoked")
    assert (await client.get(session_url)).status_code == 200  # the session's URLs are not the key's


async def test_a_presigned_put_of_an_api_key_is_audited_with_the_key(immediate, app, client, tenant, bucket) -> None:
    key = await create_key(client, tenant["headers"], name="uploader", scopes=["objects:write"])
    put_url = await presigned_url(client, key_headers(key), "up/file.txt", method="PUT")
    assert (await client.put(put_url, content=b"hi", headers={"Content-Type": "text/plain"})).status_code == 201
    await app.state.audit.flush()
    events = (await client.get("/api/v1/audit", headers=tenant["headers"])).json()["items"]
    put = next(e for e in events if e["action"] == "objects.put_presigned")
    assert put["api_key_id"] == key["id"] and put["username"] == "alice"


async def test_a_presigned_get_costs_what_a_bearer_get_costs(app, client, tenant, obj, monkeypatch) -> None:
    """The signature and session checks are in memory: a presigned GET sends the same Redis commands
    as the same GET with a token."""
    url = await presigned_url(client, tenant["headers"], "docs/report.bin")
    target = object_url("docs/report.bin")
    await client.get(url)
    await client.get(target, headers=tenant["headers"])  # scripts loaded, token cached
    # The upload's and the presign's audit events are queued within AUDIT_BATCH_LINGER_SECONDS, on a
    # connection of the same class: out of the way before counting.
    await app.state.audit.flush()

    async def commands_of(request) -> list[bytes]:  # type: ignore[no-untyped-def]
        with sent_commands(monkeypatch) as sent:
            response = await request
        assert response.status_code == 200
        return [command_name(packed) for packed in sent]

    bearer_commands = await commands_of(client.get(target, headers=tenant["headers"]))
    presigned_commands = await commands_of(client.get(url))
    assert presigned_commands == bearer_commands
