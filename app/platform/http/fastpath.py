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

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Message, Receive, Scope, Send

FastHandler = Callable[[Request], Awaitable[Response | None]]


def fast_path_route(fast: FastHandler) -> type[APIRoute]:
    """An APIRoute class that answers with ``fast`` when it can, else as FastAPI does."""

    class FastPathRoute(APIRoute):
        fast_path = True
        fast_handler = staticmethod(fast)

        async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
            methods = self.methods or ()
            if scope["type"] == "http" and scope["method"] in methods and scope["app"].state.settings.kv_fast_paths:
                await answer_fast(fast, self, scope, receive, send)
                return
            await super().handle(scope, receive, send)

    return FastPathRoute


async def answer_fast(fast: FastHandler, route: APIRoute, scope: Scope, receive: Receive, send: Send) -> None:
    """``fast``'s answer, or else FastAPI's handler of ``route`` (given the body ``fast`` read)."""
    request = Request(scope, receive, send)
    response = await fast(request)
    if response is not None:
        await response(scope, receive, send)
        return
    if hasattr(request, "_body"):  # the fast handler read the body: FastAPI reads it again
        receive = _replay(request._body, receive)
    await APIRoute.handle(route, scope, receive, send)


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


class HotRoute(BaseRoute):
    """The fast-path routes of one path template, matched before every router of the app.

    FastAPI (0.165) keeps an included router's routes behind it: for each request it asks every
    included router in turn whether one of its routes matches, then asks the chosen router again which
    one (two walks), and keeps its bookkeeping in the scope as it goes (together ~40 us of a PUT's
    CPU in process, cProfile). This route stands first in the app's own route list and matches with the
    regex of the effective route FastAPI built for the documented route (its prefix, its convertors),
    then puts in the scope what FastAPI's router would have (``route``, ``endpoint``, ``path_params``
    and the effective route context the middleware read the template from), so that whatever runs
    after (the fast handler, or FastAPI's own handler of that route) sees the request as if FastAPI
    had routed it. It documents nothing (the OpenAPI document comes from the routers)."""

    def __init__(self, template: str, by_method: dict[str, tuple[Any, FastHandler]]) -> None:
        self.path_format = template  # what FastAPI's router reports as the selected route's template
        self._by_method = by_method

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        hot = self._by_method.get(scope["method"])
        if hot is None:
            return Match.NONE, {}
        context = hot[0]
        match, child_scope = context.matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        child_scope["route"] = context.original_route
        child_scope["fastapi"] = {"effective_route_context": context}
        return Match.FULL, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        context, fast = self._by_method[scope["method"]]
        route = context.original_route
        if scope["app"].state.settings.kv_fast_paths:
            await answer_fast(fast, route, scope, receive, send)
        else:
            await APIRoute.handle(route, scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # the documented routes build the URLs


def install_hot_routes(app: FastAPI, router: APIRouter) -> None:
    """Put the fast-path routes of ``router`` (already included in ``app``) before every other route
    of ``app``: one :class:`HotRoute` per path template. Call it after the routers are included."""
    fast_routes = {
        id(route): route.fast_handler  # type: ignore[attr-defined]  # routes compare by value: not hashable
        for route in router.routes
        if isinstance(route, APIRoute) and getattr(route, "fast_path", False)
    }
    templates: dict[str, dict[str, tuple[Any, FastHandler]]] = {}
    for included in app.router.routes:
        contexts = getattr(included, "effective_route_contexts", None)
        if contexts is None:
            continue
        for context in contexts():
            fast = fast_routes.get(id(context.original_route))
            if fast is None:
                continue
            for method in context.original_route.methods or ():
                templates.setdefault(context.path_format, {})[method] = (context, fast)
    if not templates:
        raise RuntimeError("install_hot_routes: the router's fast-path routes are not included in the app")
    for template, by_method in templates.items():
        app.router.routes.insert(0, HotRoute(template, by_method))
