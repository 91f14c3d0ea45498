"""What Idempotency-Key costs, measured in-process (CPU, not wall time, so a busy machine skews it less):
the app on its own redis-server, one tenant, then interleaved blocks of PUT of one key without the
header, with a fresh key each time (reserve + store) and the same request again (a replay); each figure
is the median over the blocks of the API process's CPU per request (the client included). Also the
middleware alone on a PUT without the header (around a no-op app) against a bare pass-through layer.

    python -m bench.idempotency_cost [--requests 1000] [--blocks 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from app.platform.http.idempotency import IdempotencyMiddleware
from bench.inprocess import in_process_stack

SCOPE = {
    "type": "http",
    "method": "PUT",
    "path": "/api/v1/kv/user:42",
    "query_string": b"",
    "headers": [
        (b"host", b"api.example.com"),
        (b"user-agent", b"curl/8.5.0"),
        (b"accept", b"*/*"),
        (b"authorization", b"Bearer " + b"x" * 200),
        (b"content-type", b"application/json"),
        (b"content-length", b"24"),
    ],
}


async def _noop(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _never(*_: Any) -> Any:
    raise AssertionError("a request without Idempotency-Key reached identify or the store")


class _PassThrough:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _NoStore:
    lease_seconds = 60


async def middleware_alone(calls: int = 300_000) -> dict[str, float]:
    layers = {
        "pass-through layer": _PassThrough(_noop),
        "IdempotencyMiddleware": IdempotencyMiddleware(_noop, _NoStore(), _never, _never, "/api/v1", 1 << 20),  # type: ignore[arg-type]
    }
    best: dict[str, float] = {}
    for _ in range(5):
        for name, layer in layers.items():
            started = time.process_time()
            for _ in range(calls):
                await layer(SCOPE, None, None)
            per_call = (time.process_time() - started) / calls * 1e9
            best[name] = min(best.get(name, per_call), per_call)
    return best


async def measure(requests: int, blocks: int) -> None:
    results: dict[str, list[float]] = {}
    async with in_process_stack("idempotency-cost") as stack:
        http, bearer = stack.http, stack.bearer
        for block in range(blocks):
            # a replay repeats the block's fresh keys, so it follows them; "no header" alternates
            kinds = ["no header", "fresh key", "replay"] if block % 2 else ["fresh key", "replay", "no header"]
            for kind in kinds:
                for _ in range(50):  # warm
                    await http.put("/api/v1/kv/k", json={"value": 2}, headers=bearer)
                started = time.process_time()
                for i in range(requests):
                    headers = bearer
                    if kind != "no header":
                        headers = {**bearer, "Idempotency-Key": f"b{block}-{i}"}
                    response = await http.put("/api/v1/kv/k", json={"value": 2}, headers=headers)
                    assert response.status_code == 200, response.text
                    if kind == "replay":
                        assert response.headers["idempotent-replayed"] == "true"
                cpu = (time.process_time() - started) / requests * 1e6
                results.setdefault(kind, []).append(cpu)
    print(f"API process CPU per PUT, median of {blocks} blocks of {requests} (client included, in-process):")
    base = statistics.median(results["no header"])
    for kind, values in results.items():
        cpu = statistics.median(values)
        print(f"  {kind:>10}: {cpu:7.1f} us  ({cpu / base:5.2f} x no header)")
    alone = await middleware_alone()
    print("the middleware alone on a PUT without the header (best of 5 x 300,000 calls, CPU):")
    for name, ns in alone.items():
        print(f"  {name:>22}: {ns:6.0f} ns per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(measure(args.requests, args.blocks))


if __name__ == "__main__":
    main()
