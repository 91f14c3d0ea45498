"""Outbound safety: https only, no URL that resolves to a loopback, private, link-local or metadata
address (at registration, and again at delivery time against the address then resolved, so DNS
rebinding cannot reach inside), no redirects followed, only the status and a short excerpt kept."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.platform.redis import SyncDataRedis
from tests.support.webhook_receiver import Receiver, run_receiver
from tests.support.webhooks import HOOKS, create_hook, one_round, rounds_until

PUBLIC = "93.184.216.34"  # any global unicast address; never contacted by these tests


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_http": False, "webhook_allowed_hosts": ""})


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http while WEBHOOK_ALLOW_HTTP is off
        "ftp://example.com/hook",
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://172.16.5.5/hook",
        "https://100.64.0.1/hook",  # carrier-grade NAT
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "https://[fd00:ec2::254]/hook",  # AWS metadata over IPv6
        "https://[fe80::1]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",  # multicast
        "https://240.0.0.1/hook",  # reserved
        "https://user:secret@example.com/hook",
        "https:///nohost",
    ],
)
async def test_unsafe_urls_are_refused_at_registration(
    url: str, strict: Settings, tenant: dict, app: Any, client: httpx.AsyncClient
) -> None:
    app.state.webhooks._settings = strict
    response = await client.post(HOOKS, json={"url": url}, headers=tenant["headers"])
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("unsafe_webhook_url", "validation_error")


async def test_a_public_https_address_is_accepted_and_allowed_hosts_open_private_ones(
    strict: Settings, tenant: dict, app: Any, client: httpx.AsyncClient
) -> None:
    app.state.webhooks._settings = strict
    assert (
        await client.post(HOOKS, json={"url": f"https://{PUBLIC}/hook"}, headers=tenant["headers"])
    ).status_code == 201
    refused = await client.patch(
        f"{HOOKS}/{(await client.get(HOOKS, headers=tenant['headers'])).json()['items'][0]['id']}",
        json={"url": "https://127.0.0.1/x"},
        headers=tenant["headers"],
    )
    assert refused.status_code == 422 and refused.json()["code"] == "unsafe_webhook_url"  # PATCH checks too
    app.state.webhooks._settings = strict.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"})
    assert (await client.post(HOOKS, json={"url": "https://127.0.0.1/x"}, headers=tenant["headers"])).status_code == 201


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """``rebind.test`` resolves to whatever the test sets (the API and the worker both resolve
    through socket.getaddrinfo)."""
    answer = {"address": PUBLIC}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["address"], int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield answer


async def test_dns_rebinding_to_loopback_is_refused_at_delivery_time(
    client: httpx.AsyncClient,
    tenant: dict,
    receiver: Receiver,
    rebinding: dict[str, str],
    sync_redis: SyncDataRedis,
    settings: Settings,
) -> None:
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=f"http://rebind.test:{receiver.port}/hook")  # public: accepted
    rebinding["address"] = "127.0.0.1"  # the name now points inside
    await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)

    async def attempted() -> list[dict[str, Any]]:
        response = await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)
        return [item for item in response.json()["items"] if item["attempts"] > 0]

    for _ in range(100):
        if await attempted():
            break
        await one_round(sync_redis, settings)
    (delivery,) = await attempted()
    assert delivery["state"] == "retrying" and delivery["last_status"] is None
    assert "127.0.0.1" in delivery["last_response"] and delivery["last_response"].startswith("refused")
    assert receiver.requests == []  # the receiver on 127.0.0.1 was never reached


async def test_redirects_are_not_followed_and_only_an_excerpt_is_kept(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    with run_receiver() as elsewhere:
        receiver.status, receiver.location = 307, elsewhere.url
        receiver.reply = b"x" * 10_000
        hook = await create_hook(client, headers, url=receiver.url)
        await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)
        await rounds_until(sync_redis, settings, lambda: receiver.requests)
        assert elsewhere.requests == []
    (delivery,) = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)).json()["items"]
    assert delivery["state"] == "retrying" and delivery["last_status"] == 307
    assert 0 < len(delivery["last_response"]) <= 256


def test_an_attempt_connects_to_the_checked_address_with_the_name_in_host_and_sni(
    rebinding: dict[str, str], settings: Settings
) -> None:
    from app.webhooks.delivery import attempt
    from app.webhooks.model import Webhook

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    hook = Webhook(
        "wh_1", "https://rebind.test/hook?x=1", "whsec_" + "A" * 32, ("*",), ("kv.put",), "", "", True, None, None, 0, 0
    )
    with httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=False) as http:
        outcome = attempt(http, settings, hook, "msg_1", b"{}")
        assert outcome.ok and outcome.status == 204
        rebinding["address"] = "10.0.0.7"
        refused = attempt(http, settings, hook, "msg_1", b"{}")
    assert not refused.ok and refused.result == "refused" and "10.0.0.7" in refused.excerpt
    (request,) = seen  # the second attempt never left
    assert request.url.host == PUBLIC and request.url.path == "/hook" and request.url.query == b"x=1"
    assert request.headers["host"] == "rebind.test"
    assert request.extensions["sni_hostname"] == "rebind.test"  # TLS verifies the certificate of the name
