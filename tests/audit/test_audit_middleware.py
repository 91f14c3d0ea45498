"""The audit middleware on a small app: which requests make an event, and what the event holds."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Response

from app.audit.middleware import AuditMiddleware
from app.audit.model import Event
from app.platform.context import audit_note, audit_skip


class RecordingAudit:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, event: Event) -> None:
        self.events.append(event)


def build_app(audit: RecordingAudit) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/api/v1/things", tags=["things"])

    @router.put("/{bucket}/items/{key}")
    async def put_item(bucket: str, key: str) -> dict[str, str]:
        audit_note(tenant_id="t1", username="alice")
        return {"ok": "yes"}

    @router.delete("/{bucket}/objects/{name}", name="things.remove", status_code=204)
    async def delete_object(bucket: str, name: str) -> Response:
        audit_note(tenant_id="t1")
        return Response(status_code=204)

    @router.post("/search")
    async def search() -> dict[str, str]:
        audit_skip()
        return {}

    @router.post("/noted")
    async def noted() -> dict[str, str]:
        audit_note(tenant_id="t1", action="things.special", bucket="b", key="k")
        return {}

    @router.post("/boom")
    async def boom() -> None:
        audit_note(tenant_id="t1")
        raise RuntimeError("bug")

    @router.get("/{bucket}")
    async def read(bucket: str) -> dict[str, str]:
        return {}

    app.include_router(router)

    @app.post("/outside")
    async def outside() -> dict[str, str]:
        return {}

    app.add_middleware(AuditMiddleware, audit=audit, api_prefix="/api/v1")
    return app


@pytest.fixture
def audit() -> RecordingAudit:
    return RecordingAudit()


@pytest.fixture
async def http(audit: RecordingAudit):  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=build_app(audit), raise_app_exceptions=False, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_action_defaults_to_tag_and_endpoint_name_with_path_params(http, audit) -> None:
    response = await http.put("/api/v1/things/b1/items/k1")
    assert response.status_code == 200
    [event] = audit.events
    assert event["action"] == "things.put_item"
    assert (event["tenant_id"], event["username"], event["bucket"], event["key"]) == ("t1", "alice", "b1", "k1")
    assert (event["status"], event["outcome"]) == ("200", "success")
    assert event["eid"] and int(event["ts"]) > 0


async def test_a_dotted_route_name_is_the_action_and_name_param_is_the_key(http, audit) -> None:
    await http.delete("/api/v1/things/b1/objects/report.pdf")
    [event] = audit.events
    assert (event["action"], event["key"], event["status"]) == ("things.remove", "report.pdf", "204")


async def test_audit_note_overrides_action_bucket_and_key(http, audit) -> None:
    await http.post("/api/v1/things/noted")
    [event] = audit.events
    assert (event["action"], event["bucket"], event["key"]) == ("things.special", "b", "k")


async def test_reads_skipped_posts_and_paths_outside_the_api_make_no_event(http, audit) -> None:
    assert (await http.get("/api/v1/things/b1")).status_code == 200
    assert (await http.post("/api/v1/things/search")).status_code == 200
    assert (await http.post("/outside")).status_code == 200
    assert audit.events == []


async def test_failures_are_recorded_with_their_status(http, audit) -> None:
    assert (await http.post("/api/v1/things/boom")).status_code == 500
    assert (await http.put("/api/v1/nowhere")).status_code == 404
    boom, unmatched = audit.events
    assert (boom["action"], boom["status"], boom["outcome"], boom["tenant_id"]) == (
        "things.boom",
        "500",
        "failure",
        "t1",
    )
    assert (unmatched["action"], unmatched["status"], unmatched["outcome"]) == ("unmatched", "404", "failure")
    assert "tenant_id" not in unmatched
