"""One build of each included route for the whole test session, instead of one per app.

FastAPI (0.165) builds the routes of an included router lazily, per app: the first request that
walks past a router analyses every endpoint of it (dependencies, pydantic adapters for parameters,
bodies and responses). The app does that once per process; the suite builds a fresh app for nearly
every test, so that analysis was about half of the in-process tests' CPU time. The result depends
only on the route and on how its router was included (prefix, dependencies, ...), not on the app,
with one exception: the app is the route's ``dependency_overrides_provider``. So a route built for
one app is reused by every later app that includes the same route the same way and sets no
dependency overrides (an app that sets some, before its first request, gets routes of its own).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from fastapi import routing

_built: dict[int, list[tuple[Any, Any, Any]]] = {}


@functools.cache
def _inclusion_fields(context_type: type) -> tuple[str, ...]:
    """How a router was included: every field of its include context but the app."""
    return tuple(f.name for f in dataclasses.fields(context_type) if f.name != "dependency_overrides_provider")


def share_route_contexts() -> None:
    """Patch FastAPI's per-app route build with a cache shared by every app of this process (once)."""
    included_router_class = getattr(routing, "_IncludedRouter", None)
    build = getattr(included_router_class, "_build_effective_context", None)
    if build is None or getattr(build, "shared", False):
        return  # another FastAPI version: nothing to share, or already shared

    def build_once(self: Any, route: Any) -> Any:
        include_context = self.include_context
        provider = include_context.dependency_overrides_provider
        if getattr(provider, "dependency_overrides", None):
            return build(self, route)
        how = tuple(getattr(include_context, name) for name in _inclusion_fields(type(include_context)))
        # The route is kept with its build, so its id is never reused by another route.
        entries = _built.setdefault(id(route), [])
        for _route, built_how, context in entries:
            if built_how == how:
                return context
        context = build(self, route)
        entries.append((route, how, context))
        return context

    build_once.shared = True  # type: ignore[attr-defined]
    included_router_class._build_effective_context = build_once  # type: ignore[union-attr]
