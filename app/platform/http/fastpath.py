"""Routes with a fast path: the hottest endpoints skip FastAPI's per-request machinery.

FastAPI resolves every parameter and dependency of a request through generic machinery and wraps
each call in exit stacks and a second exception-handling layer (together about a third of a KV GET's
CPU in the API process, measured with py-spy under `make bench --profile get`). A fast-path route keeps
everything else of the route (matching, OpenAPI, the exception handlers, the middleware and the route
template they see) and, once the router has chosen it, tries a hand-written handler that calls the
same dependency objects, the same validation and the same service code. The fast handler returns
``None`` whenever the request is anything but the plain case (a query string, another content type,
a body the model refuses...), before it has done anything with a side effect, and the request then
goes through FastAPI's own handler, with the body it may have read replayed: whatever FastAPI would
answer, it still answers. An exception of the fast handler reaches the same exception handlers.
tests/kv/test_fast_path.py sends the same requests both ways and compares the answers.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.types import Message, Receive, Scope, Send

FastHandler = Callable[[Request], Awaitable[Response | None]]


def fast_path_route(fast: FastHandler) -> type[APIRoute]:
    """An APIRoute class that answers with ``fast`` when it can, else as FastAPI does."""

    class FastPathRoute(APIRoute):
        fast_path = True

        async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
            methods = self.methods or ()
            if scope["type"] == "http" and scope["method"] in methods and scope["app"].state.settings.kv_fast_paths:
                request = Request(scope, receive, send)
                response = await fast(request)
                if response is not None:
                    await response(scope, receive, send)
                    return
                if hasattr(request, "_body"):  # the fast handler read the body: FastAPI reads it again
                    receive = _replay(request._body, receive)
            await super().handle(scope, receive, send)

    return FastPathRoute


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that first hands out ``body`` again (the whole request body, already read)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def hot_router(router: APIRouter) -> APIRouter:
    """The fast-path routes of ``router`` again, undocumented, in a router of their own: included before
    every other router, they are matched first, with one regex each. FastAPI walks the routes of an
    included router twice per request (to find the router, then the route), so the hottest requests
    otherwise paid for every route declared before theirs (~15% of a GET's CPU in process). The copies
    are the same routes (path, dependencies, handlers); ``router`` keeps the originals, which document
    them and answer nothing a copy does not answer first."""
    hot = APIRouter()
    for route in router.routes:
        if isinstance(route, APIRoute) and getattr(route, "fast_path", False):
            twin = copy.copy(route)
            twin.include_in_schema = False
            hot.routes.append(twin)
    return hot
