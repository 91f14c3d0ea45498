"""Routes with a fast path: the hottest endpoints skip FastAPI's per-request dependency resolution.

FastAPI resolves every parameter and dependency of a request through generic machinery (about a
third of a KV GET's CPU in the API process, measured with py-spy under `make bench`). A fast-path
route keeps everything else of the route (matching, OpenAPI, the exception handlers, the middleware
and the route template they see) and, before FastAPI's handler, tries a hand-written one that calls
the same dependency objects, the same validation and the same service code. The fast handler
returns ``None`` whenever the request is anything but the plain case (a query string, another
content type, a body the model refuses...), before it has done anything with a side effect, and the
request then goes through FastAPI's own handler: whatever FastAPI would answer, it still answers.
tests/kv/test_fast_path.py sends the same requests both ways and compares the answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

FastHandler = Callable[[Request], Awaitable[Response | None]]


def fast_path_route(fast: FastHandler) -> type[APIRoute]:
    """An APIRoute class whose handler tries ``fast`` first and falls back to FastAPI's."""

    class FastPathRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            standard = super().get_route_handler()

            async def handler(request: Request) -> Response:
                if request.app.state.settings.kv_fast_paths:
                    response = await fast(request)
                    if response is not None:
                        return response
                return await standard(request)

            return handler

    return FastPathRoute
