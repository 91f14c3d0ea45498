"""The response status the middlewares read: recorded once by the request-context middleware, or, for a
middleware used without it, by a ``send`` of its own."""

from __future__ import annotations

from starlette.types import Message

from app.platform.http.middleware import RESPONSE_START, ResponseStart, watch_response


async def test_under_the_request_context_middleware_no_second_wrapper() -> None:
    recorded = ResponseStart()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    start, passed_on = watch_response({"type": "http", RESPONSE_START: recorded}, send)
    assert start is recorded and passed_on is send


async def test_without_it_a_send_that_records_the_start_and_passes_every_message_on() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    start, passed_on = watch_response({"type": "http"}, send)
    assert (start.status, start.at) == (0, 0.0)
    await passed_on({"type": "http.response.start", "status": 418, "headers": []})
    assert start.status == 418 and start.at > 0
    await passed_on({"type": "http.response.body", "body": b"x"})
    assert start.status == 418
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
