"""A NUL character in a password (bcrypt refuses to hash one) is a 4xx problem, never a 500."""

from __future__ import annotations

import pytest

from tests.support.problems import assert_problem
from tests.support.tenants import PASSWORD

pytestmark = pytest.mark.contract

AUTH = "/api/v1/auth"
NUL_PASSWORD = "Secret12\x003"


async def test_register_refuses_a_password_with_nul(client):
    response = await client.post(
        f"{AUTH}/register", json={"username": "alice", "email": "alice@example.com", "password": NUL_PASSWORD}
    )
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["body.password"]
    assert "NUL" in body["errors"][0]["message"]


async def test_login_refuses_a_password_with_nul(client, tenant):
    response = await client.post(f"{AUTH}/login", json={"username": "alice", "password": NUL_PASSWORD})
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["body.password"]
    # And it is no failed login: the right password still works.
    assert (await client.post(f"{AUTH}/login", json={"username": "alice", "password": PASSWORD})).status_code == 200


async def test_token_form_refuses_a_password_with_nul(client, tenant):
    response = await client.post(f"{AUTH}/token", data={"username": "alice", "password": NUL_PASSWORD})
    assert_problem(response, 401, "invalid_credentials")
