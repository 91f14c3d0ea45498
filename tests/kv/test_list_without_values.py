"""GET /kv?values=false (and the bucket listing): keys and metadata, the values never read."""

from __future__ import annotations

import pytest

from tests.support.kv_api import Api

pytestmark = pytest.mark.contract


async def test_listing_without_values_has_the_metadata_of_each_key(api: Api):
    full = {}
    for i in range(5):
        full[f"k{i}"] = await api.must_put(f"k{i}", {"big": "x" * 10_000}, tags={"n": str(i)}, ttl=600)
    await api.must_put("bin", "aGVsbG8=", encoding="base64")
    response = await api.list(values="false", limit=3)
    assert response.status_code == 200, response.text
    page = response.json()
    assert [item["key"] for item in page["items"]] == ["bin", "k0", "k1"]
    assert all("value" not in item for item in page["items"])
    assert page["items"][0]["encoding"] == "base64"
    assert len(response.content) < 3000
    for item in page["items"][1:]:
        expected = full[item["key"]]["metadata"]
        assert item["metadata"]["version"] == expected["version"]
        assert item["metadata"]["revision"] == expected["revision"]
        assert item["metadata"]["tags"] == expected["tags"]
        assert item["metadata"]["expires_at"] == expected["expires_at"]
    rest = (await api.list(values="false", cursor=page["next_cursor"], limit=3)).json()
    assert [item["key"] for item in rest["items"]] == ["k2", "k3", "k4"]
    numbered = (await api.list(values="false", page=2, page_size=2, tag_filter="n:3")).json()
    assert numbered["items"] == [] and numbered["total"] == 1
    with_values = (await api.list(limit=1)).json()
    assert with_values["items"][0]["value"] == "aGVsbG8="


async def test_bucket_listing_without_values(api: Api):
    await api.create_bucket("b")
    bucket = api.bucket("b")
    await bucket.must_put("a", [1, 2, 3])
    items = (await bucket.list(values="false")).json()["items"]
    assert items[0]["key"] == "a" and "value" not in items[0] and items[0]["metadata"]["version"] == 1


async def test_the_store_never_reads_the_values(app, api: Api):  # type: ignore[no-untyped-def]
    await api.must_put("a", "v" * 1000)
    page = await app.state.kv_service.list_keys(api.tenant_id, "default", limit=10, values=False)
    assert [e.key for e in page.entries] == ["a"] and page.entries[0].value_json == b""
    assert page.entries[0].version == 1
