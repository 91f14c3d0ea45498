"""What an API key costs next to a login's access token, measured in-process (CPU, not wall time, so
a busy machine skews it less than wrk): the app on its own redis-server, one tenant, then blocks of
GET and PUT of one key with the access token and with an API key (kv:read, kv:write), interleaved;
each figure is the median over the blocks of the API process's CPU time per request. Also the
authentication step alone (verify + the revocation check), per call.

    python -m bench.apikey_cost [--requests 2000] [--blocks 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from app.auth.deps import authenticate
from bench.inprocess import in_process_stack


async def measure(requests: int, blocks: int) -> None:
    async with in_process_stack("apikey-cost") as stack:
        app, http, token, bearer = stack.app, stack.http, stack.token, stack.bearer
        grant = {"name": "bench", "scopes": ["kv:read", "kv:write"]}
        key = (await http.post("/api/v1/auth/api-keys", json=grant, headers=bearer)).json()["key"]
        credentials = {"jwt": bearer, "apikey": {"Authorization": f"Bearer {key}"}}
        assert app.state.sessions.current
        results: dict[str, list[float]] = {}
        for block in range(blocks):
            order = list(credentials.items()) if block % 2 else list(credentials.items())[::-1]
            for method in ("GET", "PUT"):
                for name, headers in order:
                    kwargs = {"json": {"value": 2}} if method == "PUT" else {}
                    for _ in range(50):  # warm
                        await http.request(method, "/api/v1/kv/k", headers=headers, **kwargs)
                    started = time.process_time()
                    for _ in range(requests):
                        response = await http.request(method, "/api/v1/kv/k", headers=headers, **kwargs)
                        assert response.status_code == 200, response.text
                    cpu = (time.process_time() - started) / requests * 1e6
                    results.setdefault(f"{method} {name}", []).append(cpu)
        state = app.state
        auth: dict[str, float] = {}
        for name, secret in (("jwt", token), ("apikey", key)):
            for _ in range(1000):
                await authenticate(state, secret)
            started = time.process_time()
            for _ in range(20000):
                await authenticate(state, secret)
            auth[name] = (time.process_time() - started) / 20000 * 1e6
    print(f"API process CPU per request, median of {blocks} blocks of {requests} (client included, in-process):")
    for method in ("GET", "PUT"):
        jwt_cpu = statistics.median(results[f"{method} jwt"])
        key_cpu = statistics.median(results[f"{method} apikey"])
        print(
            f"  {method}: access token {jwt_cpu:7.1f} us   API key {key_cpu:7.1f} us   "
            f"key / token {key_cpu / jwt_cpu:5.3f}"
        )
    print(f"authentication alone: access token {auth['jwt']:.2f} us, API key {auth['apikey']:.2f} us per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(measure(args.requests, args.blocks))


if __name__ == "__main__":
    main()
