import pytest

pytestmark = pytest.mark.contract


async def test_register_login_me_roundtrip(client, tenant):
    me = await client.get("/api/v1/auth/me", headers=tenant["headers"])
    assert me.status_code == 200
    assert me.json()["tenant_id"] == tenant["tenant_id"]
    login = await client.post("/api/v1/auth/login", json={"username": "ALICE", "password": "Secret123"})
    assert login.status_code == 200
    assert login.json()["token_type"] == "bearer"
