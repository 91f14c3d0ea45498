"""Every rule of /api/v1/auth: registration, login and its throttle, the OAuth2 form, refresh
rotation with reuse detection, logout, bad tokens, the token cache and bcrypt off the loop."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import RedisProcess
from app.platform.errors import InvalidToken
from app.platform.security import TokenService
from tests.support.apps import serve
from tests.support.problems import assert_problem
from tests.support.tenants import PASSWORD, register

pytestmark = pytest.mark.contract

AUTH = "/api/v1/auth"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_fields(response: httpx.Response) -> set[str]:
    return {error["field"] for error in assert_problem(response, 422, "validation_error")["errors"]}


async def login(client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD) -> httpx.Response:
    return await client.post(f"{AUTH}/login", json={"username": username, "password": password})


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


class RecordingCryptContext:
    """Wraps the hasher's CryptContext to record bcrypt calls and the threads they run on."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.lock = threading.Lock()
        self.entered = 0
        self.exited = 0
        self.threads: set[int] = set()

    def verify(self, *args: Any, **kwargs: Any) -> bool:
        with self.lock:
            self.entered += 1
            self.threads.add(threading.get_ident())
        try:
            return self._context.verify(*args, **kwargs)
        finally:
            with self.lock:
                self.exited += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


# --- register -------------------------------------------------------------------------------


async def test_register_returns_201_with_uuid4_tenant_and_bearer_tokens(client, settings):
    response = await client.post(
        f"{AUTH}/register", json={"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"tenant_id", "access_token", "refresh_token", "token_type", "expires_in"}
    assert uuid.UUID(body["tenant_id"]).version == 4
    assert str(uuid.UUID(body["tenant_id"])) == body["tenant_id"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_expire_minutes * 60
    claims = jwt.decode(body["access_token"], settings.secret_key, algorithms=["HS256"])
    assert claims["sub"] == body["tenant_id"]
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert claims["jti"]
    refresh = jwt.decode(body["refresh_token"], settings.secret_key, algorithms=["HS256"])
    assert refresh["type"] == "refresh"
    assert refresh["exp"] - refresh["iat"] == settings.refresh_token_expire_days * 86400
    me = await client.get(f"{AUTH}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["tenant_id"] == body["tenant_id"]
    assert me.json()["email"] == "alice@example.com"
    assert me.json()["is_active"] is True


async def test_register_stores_username_lower_case(client):
    body = await register(client, "Alice.Smith_2-X", email="as@example.com")
    me = await client.get(f"{AUTH}/me", headers=bearer(body["access_token"]))
    assert me.json()["username"] == "alice.smith_2-x"
    assert (await login(client, "ALICE.SMITH_2-X")).status_code == 200
    assert (await login(client, "alice.smith_2-x")).status_code == 200


@pytest.mark.parametrize("username", ["abc", "a" * 32, "a.b", "x_y-z", "123", "..."])
async def test_register_accepts_usernames_within_the_rules(client, username):
    await register(client, username, email="someone@example.com")


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 33, "al ice", "al!ce", "alice@x", "al/ice", "ålice", "\u212aate", "alice\n", "", "ali\u0000ce"],
)
async def test_register_rejects_usernames_outside_the_rules(client, username):
    response = await client.post(
        f"{AUTH}/register", json={"username": username, "email": "a@example.com", "password": PASSWORD}
    )
    assert error_fields(response) == {"body.username"}


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", "a@@example.com", ""])
async def test_register_rejects_invalid_email(client, email):
    response = await client.post(f"{AUTH}/register", json={"username": "alice", "email": email, "password": PASSWORD})
    assert error_fields(response) == {"body.email"}


@pytest.mark.parametrize(
    "password",
    [
        "Short1a",  # 7 bytes
        "alllowercase1",  # no upper-case letter
        "ALLUPPERCASE1",  # no lower-case letter
        "NoDigitsHere",  # no digit
        "Aa1" + "x" * 70,  # 73 bytes
        "Aa1" + "é" * 35,  # 73 bytes in UTF-8, 38 characters
    ],
)
async def test_register_rejects_passwords_outside_the_rules(client, password):
    response = await client.post(
        f"{AUTH}/register", json={"username": "alice", "email": "a@example.com", "password": password}
    )
    assert error_fields(response) == {"body.password"}


async def test_register_rejects_73_byte_password_naming_the_limit(client):
    response = await client.post(
        f"{AUTH}/register", json={"username": "alice", "email": "a@example.com", "password": "Aa1" + "x" * 70}
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "body.password"
    assert "72 bytes" in body["errors"][0]["message"]


@pytest.mark.parametrize("password", ["Abcdefg1", "Aa1" + "x" * 69, "Aa1" + "é" * 34 + "x"])
async def test_register_accepts_passwords_of_8_to_72_bytes(client, password):
    response = await client.post(
        f"{AUTH}/register", json={"username": "alice", "email": "a@example.com", "password": password}
    )
    assert response.status_code == 201, response.text
    assert (await login(client, "alice", password)).status_code == 200


async def test_register_names_every_invalid_field(client):
    response = await client.post(f"{AUTH}/register", json={"username": "a", "email": "x", "password": "y"})
    assert error_fields(response) == {"body.username", "body.email", "body.password"}
    missing = await client.post(f"{AUTH}/register", json={})
    assert error_fields(missing) == {"body.username", "body.email", "body.password"}


async def test_register_duplicate_username_is_409_case_insensitively(client):
    await register(client, "alice", email="first@example.com")
    response = await client.post(
        f"{AUTH}/register", json={"username": "ALICE", "email": "second@example.com", "password": PASSWORD}
    )
    assert_problem(response, 409, "username_taken")
    # The failed attempt did not claim its email: it can still register.
    await register(client, "bob", email="second@example.com")


async def test_register_duplicate_email_is_409_case_insensitively(client):
    await register(client, "alice", email="Alice@Example.com")
    response = await client.post(
        f"{AUTH}/register", json={"username": "bob", "email": "aLiCe@example.COM", "password": PASSWORD}
    )
    assert_problem(response, 409, "email_taken")
    # The failed attempt released the username it had claimed.
    await register(client, "bob", email="bob@example.com")


async def test_concurrent_registrations_of_one_username_yield_exactly_one_201(app, client, monkeypatch):
    attempts = 30
    # Every request waits here after hashing until all 30 are in flight, so the claims race for real.
    in_flight = asyncio.Barrier(attempts)
    original_hash = app.state.hasher.hash

    async def hash_then_wait_for_all(password: str) -> str:
        hashed = await original_hash(password)
        async with asyncio.timeout(10):
            await in_flight.wait()
        return hashed

    monkeypatch.setattr(app.state.hasher, "hash", hash_then_wait_for_all)
    responses = await asyncio.gather(
        *(
            client.post(
                f"{AUTH}/register",
                json={"username": "racer" if i % 2 else "RACER", "email": f"r{i}@example.com", "password": PASSWORD},
            )
            for i in range(attempts)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == attempts - 1, statuses
    assert all(r.json()["code"] == "username_taken" for r in responses if r.status_code == 409)
    winner = statuses.index(201)
    me = await client.get(f"{AUTH}/me", headers=bearer(responses[winner].json()["access_token"]))
    assert me.json()["email"] == f"r{winner}@example.com"
    # The losers left no user record and no email claim behind.
    users = [key async for key in app.state.data_redis.scan_iter(match="t:*:user")]
    assert len(users) == 1
    monkeypatch.undo()
    await register(client, "another", email=f"r{(winner + 1) % attempts}@example.com")


async def test_concurrent_registrations_of_one_email_yield_exactly_one_201(app, client, monkeypatch):
    attempts = 10
    in_flight = asyncio.Barrier(attempts)
    original_hash = app.state.hasher.hash

    async def hash_then_wait_for_all(password: str) -> str:
        hashed = await original_hash(password)
        async with asyncio.timeout(10):
            await in_flight.wait()
        return hashed

    monkeypatch.setattr(app.state.hasher, "hash", hash_then_wait_for_all)
    responses = await asyncio.gather(
        *(
            client.post(
                f"{AUTH}/register",
                json={"username": f"user{i}", "email": "same@example.com", "password": PASSWORD},
            )
            for i in range(attempts)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, statuses
    assert all(r.json()["code"] == "email_taken" for r in responses if r.status_code == 409)
    # Every loser released its username.
    monkeypatch.undo()
    for i, status in enumerate(statuses):
        if status == 409:
            await register(client, f"user{i}", email=f"user{i}@example.com")


# --- login ----------------------------------------------------------------------------------


async def test_login_returns_a_working_token_pair(client, tenant, settings):
    response = await login(client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_expire_minutes * 60
    me = await client.get(f"{AUTH}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["tenant_id"] == tenant["tenant_id"]
    assert me.json()["username"] == "alice"
    refreshed = await client.post(f"{AUTH}/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200


async def test_login_unknown_user_and_wrong_password_get_the_same_401(app, client, tenant):
    recorder = RecordingCryptContext(app.state.hasher._context)
    app.state.hasher._context = recorder
    wrong_password = await login(client, "alice", "Wrong-password1")
    unknown_user = await login(client, "nobody", PASSWORD)
    for response in (wrong_password, unknown_user):
        assert_problem(response, 401, "invalid_credentials")
    assert without_request_id(wrong_password.json()) == without_request_id(unknown_user.json())
    assert wrong_password.headers["www-authenticate"] == unknown_user.headers["www-authenticate"]
    # Both ran one bcrypt verification, so both take about as long.
    assert recorder.entered == 2


async def test_sixth_login_attempt_after_five_failures_is_429_even_with_the_right_password(client, tenant, settings):
    for _ in range(settings.login_max_failures):
        assert_problem(await login(client, "alice", "Wrong-password1"), 401, "invalid_credentials")
    for password in ("Wrong-password1", PASSWORD):
        response = await login(client, "ALICE", password)
        assert_problem(response, 429, "login_throttled")
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= settings.login_failure_window_seconds
    # The throttle is per username.
    await register(client, "bob")
    assert (await login(client, "bob")).status_code == 200


async def test_login_throttle_counts_unknown_usernames_too(client, settings):
    for _ in range(settings.login_max_failures):
        assert_problem(await login(client, "ghost", PASSWORD), 401, "invalid_credentials")
    assert_problem(await login(client, "ghost", PASSWORD), 429, "login_throttled")


async def test_successful_login_resets_the_failure_count(client, tenant, settings):
    for _ in range(settings.login_max_failures - 1):
        assert (await login(client, "alice", "Wrong-password1")).status_code == 401
    assert (await login(client)).status_code == 200
    for _ in range(settings.login_max_failures - 1):
        assert (await login(client, "alice", "Wrong-password1")).status_code == 401
    assert (await login(client)).status_code == 200


async def test_login_throttle_ends_when_the_window_passes(settings):
    fast_window = settings.model_copy(update={"login_failure_window_seconds": 1, "login_max_failures": 2})
    async with serve(create_app(fast_window)) as http:
        await register(http, "alice")
        for _ in range(2):
            assert (await login(http, "alice", "Wrong-password1")).status_code == 401
        throttled = await login(http)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"
        await asyncio.sleep(1.2)
        assert (await login(http)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice"},
        {"password": PASSWORD},
        {"username": "alice", "password": ""},
        {"username": "alice", "password": "Aa1" + "x" * 70},
        {"username": "alice", "password": PASSWORD, "extra": 1},
    ],
)
async def test_login_rejects_malformed_bodies_with_422(client, body):
    assert_problem(await client.post(f"{AUTH}/login", json=body), 422, "validation_error")


async def test_oauth2_token_form_logs_in(client, tenant):
    # What the Authorize button of /docs sends.
    form = {"grant_type": "password", "username": "Alice", "password": PASSWORD, "scope": ""}
    response = await client.post(f"{AUTH}/token", data=form)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    me = await client.get(f"{AUTH}/me", headers=bearer(body["access_token"]))
    assert me.json()["tenant_id"] == tenant["tenant_id"]
    wrong = await client.post(f"{AUTH}/token", data={"username": "alice", "password": "Wrong-password1"})
    assert_problem(wrong, 401, "invalid_credentials")
    assert wrong.headers["www-authenticate"].startswith("Bearer")


# --- refresh and logout ---------------------------------------------------------------------


async def test_refresh_returns_a_new_pair_and_spends_the_old_refresh_token(client, tenant):
    first = await client.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})
    assert first.status_code == 200
    pair = first.json()
    assert pair["token_type"] == "bearer"
    assert pair["refresh_token"] != tenant["refresh_token"]
    assert pair["access_token"] != tenant["access_token"]
    me = await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
    assert me.json()["username"] == "alice"
    second = await client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
    assert second.status_code == 200


async def test_replayed_refresh_token_is_401_and_revokes_the_whole_family(client, tenant):
    rotated = (await client.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})).json()
    newest = (await client.post(f"{AUTH}/refresh", json={"refresh_token": rotated["refresh_token"]})).json()
    replay = await client.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})
    assert_problem(replay, 401, "refresh_token_reused")
    assert replay.headers["www-authenticate"].startswith("Bearer")
    # The newest token of that family stops working too.
    assert_problem(await client.post(f"{AUTH}/refresh", json={"refresh_token": newest["refresh_token"]}), 401)
    # Another session (family) of the same tenant is untouched.
    other = (await login(client)).json()
    assert (await client.post(f"{AUTH}/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 200


async def test_logout_is_204_and_its_refresh_token_no_longer_works(client, tenant):
    response = await client.post(f"{AUTH}/logout", json={"refresh_token": tenant["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    refused = await client.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})
    assert_problem(refused, 401)


async def test_logout_revokes_tokens_rotated_from_the_same_session(client, tenant):
    rotated = (await client.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})).json()
    assert (await client.post(f"{AUTH}/logout", json={"refresh_token": rotated["refresh_token"]})).status_code == 204
    assert_problem(await client.post(f"{AUTH}/refresh", json={"refresh_token": rotated["refresh_token"]}), 401)


async def test_refresh_token_is_refused_as_access_token(client, tenant):
    response = await client.get(f"{AUTH}/me", headers=bearer(tenant["refresh_token"]))
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("endpoint", ["refresh", "logout"])
async def test_access_token_is_refused_as_refresh_token(client, tenant, endpoint):
    response = await client.post(f"{AUTH}/{endpoint}", json={"refresh_token": tenant["access_token"]})
    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 4096])
async def test_refresh_with_garbage_is_401(client, token):
    assert_problem(await client.post(f"{AUTH}/refresh", json={"refresh_token": token}), 401, "invalid_token")


async def test_refresh_token_never_stored_is_401(client, tenant, settings):
    forged, _ = TokenService(settings).create_refresh_token(tenant["tenant_id"], uuid.uuid4().hex)
    assert_problem(await client.post(f"{AUTH}/refresh", json={"refresh_token": forged}), 401, "invalid_token")


# --- bad access tokens on /auth/me ----------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _access_payload(tenant_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {"sub": tenant_id, "usr": "alice", "type": "access", "iat": now, "exp": now + 600, "jti": "j1"}
    payload.update(overrides)
    return payload


def _bad_token(kind: str, tenant: dict[str, Any], secret: str) -> str | None:
    tid = tenant["tenant_id"]
    now = int(time.time())
    match kind:
        case "expired":
            return jwt.encode(_access_payload(tid, iat=now - 120, exp=now - 60), secret, algorithm="HS256")
        case "wrong_signature":
            return jwt.encode(_access_payload(tid), "another-secret-that-is-long-enough-0123456789", algorithm="HS256")
        case "alg_none":
            return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_access_payload(tid))}."
        case "alg_hs512":
            return jwt.encode(_access_payload(tid), secret, algorithm="HS512")
        case "subject_not_uuid":
            return jwt.encode(_access_payload("not-a-uuid"), secret, algorithm="HS256")
        case "subject_uuid_not_canonical":
            return jwt.encode(_access_payload(uuid.UUID(tid).hex), secret, algorithm="HS256")
        case "subject_braced_uuid":
            return jwt.encode(_access_payload("{" + tid + "}"), secret, algorithm="HS256")
        case "no_exp":
            payload = _access_payload(tid)
            del payload["exp"]
            return jwt.encode(payload, secret, algorithm="HS256")
        case "no_type":
            payload = _access_payload(tid)
            del payload["type"]
            return jwt.encode(payload, secret, algorithm="HS256")
        case "refresh_as_access":
            return tenant["refresh_token"]
        case "tampered":
            header, payload, signature = tenant["access_token"].split(".")
            other = _b64(_access_payload(str(uuid.uuid4())))
            return f"{header}.{other}.{signature}"
        case "malformed":
            return "not-a-jwt"
        case "malformed_segments":
            return "a.b.c"
    raise AssertionError(kind)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "wrong_signature",
        "alg_none",
        "alg_hs512",
        "subject_not_uuid",
        "subject_uuid_not_canonical",
        "subject_braced_uuid",
        "no_exp",
        "no_type",
        "refresh_as_access",
        "tampered",
        "malformed",
        "malformed_segments",
    ],
)
async def test_me_refuses_bad_token_with_401_bearer_problem(client, tenant, settings, kind):
    response = await client.get(f"{AUTH}/me", headers=bearer(_bad_token(kind, tenant, settings.secret_key)))
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer"}],
)
async def test_me_without_bearer_token_is_401_bearer_problem(client, tenant, headers):
    response = await client.get(f"{AUTH}/me", headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_me_returns_the_current_user(client, tenant):
    response = await client.get(f"{AUTH}/me", headers=tenant["headers"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"username", "email", "tenant_id", "is_active", "created_at"}
    assert body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert body["tenant_id"] == tenant["tenant_id"]
    assert body["is_active"] is True
    assert body["created_at"].startswith(time.strftime("%Y-", time.gmtime()))


# --- token cache and bcrypt (no Redis backend involved) --------------------------------------


@pytest.fixture
def token_settings() -> Settings:
    return Settings(environment="test", secret_key="cache-secret-key-that-is-long-enough-0123", token_cache_size=2)


def test_token_cache_never_serves_a_token_past_its_exp(token_settings):
    tokens = TokenService(token_settings)
    tokens.access_ttl = 1
    token = tokens.create_access_token(str(uuid.uuid4()), "alice", "session")
    claims = tokens.verify_access_token(token)
    assert tokens.verify_access_token(token) is claims  # served from the cache
    time.sleep(max(0.0, claims.expires_at - time.time()) + 0.05)
    with pytest.raises(InvalidToken):
        tokens.verify_access_token(token)


@pytest.mark.parametrize("form", ["hex", "braced", "urn", "upper"])
def test_tokens_with_a_non_canonical_tenant_id_are_refused(token_settings, form):
    tokens = TokenService(token_settings)
    tenant_id = uuid.uuid4()
    subject = {
        "hex": tenant_id.hex,
        "braced": f"{{{tenant_id}}}",
        "urn": tenant_id.urn,
        "upper": str(tenant_id).upper(),
    }
    now = int(time.time())
    claims = {"sub": subject[form], "iat": now, "exp": now + 60, "jti": "j"}
    access = jwt.encode({**claims, "type": "access"}, token_settings.secret_key, algorithm="HS256")
    refresh = jwt.encode({**claims, "type": "refresh", "fam": "f"}, token_settings.secret_key, algorithm="HS256")
    with pytest.raises(InvalidToken):
        tokens.verify_access_token(access)
    with pytest.raises(InvalidToken):
        tokens.verify_refresh_token(refresh)
    # The canonical form of the same id is accepted.
    good = jwt.encode({**claims, "sub": str(tenant_id), "type": "access"}, token_settings.secret_key, algorithm="HS256")
    assert tokens.verify_access_token(good).tenant_id == str(tenant_id)


def test_token_issued_by_a_replica_whose_clock_runs_ahead_is_accepted(token_settings):
    tokens = TokenService(token_settings)
    tenant_id = str(uuid.uuid4())
    later = int(time.time()) + 5
    payload = {"sub": tenant_id, "type": "access", "iat": later, "exp": later + 60, "jti": "j"}
    token = jwt.encode(payload, token_settings.secret_key, algorithm="HS256")
    assert tokens.verify_access_token(token).tenant_id == tenant_id


def test_token_cache_is_bounded(token_settings):
    tokens = TokenService(token_settings)
    issued = [tokens.create_access_token(str(uuid.uuid4()), f"user{i}", "session") for i in range(3)]
    first = tokens.verify_access_token(issued[0])
    for token in issued[1:]:
        tokens.verify_access_token(token)
    # Cache size 2: the oldest entry was evicted and is verified (and cached) afresh.
    again = tokens.verify_access_token(issued[0])
    assert again == first
    assert again is not first


@pytest.fixture
async def slow_bcrypt_client(data_server: RedisProcess, queue_server: RedisProcess) -> AsyncIterator[Any]:
    import redis

    for server in (data_server, queue_server):
        with redis.Redis(port=server.port) as plain:
            plain.flushall()
    slow = Settings(
        environment="test",
        secret_key="bcrypt-secret-key-that-is-long-enough-0123",
        redis_url=data_server.url,
        huey_redis_url=queue_server.url,
        bcrypt_rounds=12,
        bcrypt_max_concurrency=6,  # the three logins below (one address: half the slots) run bcrypt at once
        log_level="WARNING",
    )
    application = create_app(slow)
    async with serve(application) as http:
        yield application, http


async def test_running_logins_do_not_block_a_health_request(slow_bcrypt_client):
    application, http = slow_bcrypt_client
    await register(http, "alice")
    recorder = RecordingCryptContext(application.state.hasher._context)
    application.state.hasher._context = recorder
    logins = [asyncio.create_task(login(http)) for _ in range(3)]
    async with asyncio.timeout(30):
        while recorder.entered < len(logins):
            await asyncio.sleep(0.001)
    # All three bcrypt verifications are running at once and the event loop is free.
    assert recorder.exited == 0
    health = await http.get("/health")
    assert health.status_code == 200
    assert not any(task.done() for task in logins)
    assert recorder.exited < len(logins)
    responses = await asyncio.gather(*logins)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert threading.get_ident() not in recorder.threads
