"""Full-text search at scale: query latency and the write overhead of the index.

Loads N documents (default 100,000; ``--docs``) into a bucket with search on and the same documents
into one without, on a private Redis: a title of 3 words and a body of 20, drawn from a vocabulary
of 20,000 words with a Zipf-like skew (a few words are in most documents, most in a handful). Then:

- write overhead: the same updates (new text for existing keys) on both buckets, one EVALSHA at a
  time; Redis's own time per kv_put call (INFO commandstats, usec_per_call) and commands per put;
- query latency: each query run ``--runs`` times through kv_search.lua (what GET /kv/search runs),
  wall time per call on the client (p50, p95) and Redis's time per call;
- the index's bytes: what it counts against the quota (the bucket's sbytes) and what Redis holds
  (used_memory of the search bucket's load minus the plain bucket's).

Prints a table and writes bench/results/search.json.

    python -m bench.search_bench [--docs 100000] [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from app.config import Settings
from app.kv.search import CANDIDATES_MAX, KV_SEARCH, PREFIX_MAX_EXPANSIONS, parse_query
from app.kv.store import KV_BUCKET_CREATE, KV_PUT, write_header
from app.platform import keyspace as keys
from app.platform.embedded_redis import RedisProcess
from app.platform.keyspace import KeySchema

RESULTS = Path(__file__).resolve().parent / "results"
TENANT = "bench-search"
VOCABULARY = 20_000


def word(rank: int) -> str:
    return f"w{rank}x"


def document(rng: random.Random) -> str:
    def pick() -> str:
        return word(min(int(rng.paretovariate(0.8)) - 1, VOCABULARY - 1))

    title = " ".join(pick() for _ in range(3))
    body = " ".join(pick() for _ in range(20))
    return json.dumps({"title": title, "body": body, "n": rng.randint(0, 1000)})


def load(client: redis.Redis, settings: Settings, bucket: str, docs: list[str]) -> float:
    """Every document into ``bucket``, pipelined; returns the seconds it took."""
    kv_put = client.register_script(KV_PUT.source)
    schema = KeySchema(TENANT)
    header = write_header(settings, TENANT, bucket)
    started = time.perf_counter()
    for start in range(0, len(docs), 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 1000, len(docs))):
            args = [*header, f"doc:{i:07d}", docs[i], "", "", "", "put", "", ""]
            kv_put(keys=[schema.bucket(bucket)], args=args, client=pipe)
        pipe.execute()
    return time.perf_counter() - started


def eval_stats(client: redis.Redis) -> tuple[int, float, int]:
    """(EVALSHA calls, Redis's usec per call, commands run inside them) since the last reset."""
    stats = client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {"calls": 0, "usec_per_call": 0.0})
    inner = sum(
        v["calls"]
        for k, v in stats.items()
        if k not in ("cmdstat_evalsha", "cmdstat_info", "cmdstat_config|resetstat")
        and not k.startswith("cmdstat_script")
    )
    return int(evalsha["calls"]), float(evalsha["usec_per_call"]), inner


def write_overhead(client: redis.Redis, settings: Settings, bucket: str, updates: list[str]) -> dict[str, Any]:
    kv_put = client.register_script(KV_PUT.source)
    schema = KeySchema(TENANT)
    header = write_header(settings, TENANT, bucket)
    kv_put(keys=[schema.bucket(bucket)], args=[*header, "doc:0000000", updates[0], "", "", "", "put", "", ""])
    client.config_resetstat()
    started = time.perf_counter()
    for i, text in enumerate(updates):
        kv_put(keys=[schema.bucket(bucket)], args=[*header, f"doc:{i:07d}", text, "", "", "", "put", "", ""])
    elapsed = time.perf_counter() - started
    calls, usec, inner = eval_stats(client)
    return {
        "bucket": bucket,
        "puts": len(updates),
        "redis_us_per_put": round(usec, 1),
        "commands_per_put": round(inner / max(calls, 1), 1),
        "client_us_per_put": round(elapsed / len(updates) * 1e6, 1),
    }


def run_query(client: redis.Redis, script: Any, q: str, limit: int = 20) -> list[Any]:
    args: list[Any] = [keys.tenant_prefix(TENANT), limit, "", "", "", CANDIDATES_MAX, PREFIX_MAX_EXPANSIONS]
    args += ["", "", "*"]
    args += parse_query(q).args()
    reply: list[Any] = script(keys=[KeySchema(TENANT).search_buckets()], args=args)
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--updates", type=int, default=2_000)
    options = parser.parse_args()
    settings = Settings(environment="test", secret_key="x" * 32, quota_max_keys=0, quota_max_kv_bytes=0)
    server = RedisProcess(Path(tempfile.mkdtemp(prefix="kvstore-search-")), appendonly=False).start()
    client = redis.Redis(port=server.port)
    rng = random.Random(7)
    docs = [document(rng) for _ in range(options.docs)]
    updates = [document(rng) for _ in range(min(options.updates, options.docs))]
    result: dict[str, Any] = {"docs": options.docs, "vocabulary": VOCABULARY}
    try:
        create = client.register_script(KV_BUCKET_CREATE.source)
        schema = KeySchema(TENANT)
        for name, search in (("plain", "0"), ("indexed", "1")):
            create(keys=[schema.bucket(name)], args=[keys.tenant_prefix(TENANT), name, 1, 0, 0, "", 0, search])
        memory0 = int(client.info("memory")["used_memory"])
        plain_s = load(client, settings, "plain", docs)
        memory1 = int(client.info("memory")["used_memory"])
        indexed_s = load(client, settings, "indexed", docs)
        memory2 = int(client.info("memory")["used_memory"])
        sbytes = int(client.hget(schema.bucket("indexed"), "sbytes") or 0)
        result["load_seconds"] = {"plain": round(plain_s, 1), "indexed": round(indexed_s, 1)}
        result["index_bytes_counted"] = sbytes
        result["index_bytes_in_redis"] = (memory2 - memory1) - (memory1 - memory0)
        result["writes"] = [write_overhead(client, settings, b, updates) for b in ("plain", "indexed")]

        script = client.register_script(KV_SEARCH.source)
        df: dict[str, int] = {}
        for text in docs:
            for term in set(json.loads(text)["title"].split() + json.loads(text)["body"].split()):
                df[term] = df.get(term, 0) + 1

        def near(share: float, skip: int = 0) -> str:
            """A word in about ``share`` of the documents."""
            ranked = sorted(df, key=lambda t: (abs(df[t] - share * len(docs)), t))
            return ranked[skip]

        common = max(df, key=lambda t: df[t])
        rare, rare2, mid, mid2, wide = near(0.001), near(0.001, 1), near(0.01), near(0.01, 1), near(0.05)
        queries = [
            ("rare (0.1%)", rare),
            ("mid (1%)", mid),
            ("wide (5%)", wide),
            ("common AND rare", f"{common} {rare}"),
            ("mid AND mid", f"{mid} {mid2}"),
            ("rare OR rare", f"{rare} OR {rare2}"),
            ("mid -common", f"{mid} -{common}"),
            ("phrase + mid", f'"{common} {word(1)}" {mid}'),
            ("prefix w12*", "w12*"),
            (f"most common ({df[common]})", common),
        ]
        rows = []
        for label, q in queries:
            try:
                reply = run_query(client, script, q)
            except redis.ResponseError as error:
                rows.append({"query": label, "q": q, "error": str(error)})
                continue
            if reply[0] != b"OK":
                rows.append({"query": label, "q": q, "refused": reply[1].decode()})
                continue
            client.config_resetstat()
            times = []
            for _ in range(options.runs):
                started = time.perf_counter()
                run_query(client, script, q)
                times.append((time.perf_counter() - started) * 1000)
            _, usec, inner = eval_stats(client)
            times.sort()
            rows.append({
                "query": label, "q": q, "matches": int(reply[1]),
                "p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
                "redis_ms": round(usec / 1000, 2), "commands": inner // options.runs,
            })  # fmt: skip
        result["queries"] = rows
        result["document_frequency"] = {label: df.get(q, 0) for label, q in queries if q in df}
    finally:
        client.close()
        server.stop()
    print(f"{options.docs} documents, load: plain {result['load_seconds']['plain']} s, "
          f"indexed {result['load_seconds']['indexed']} s; index {result['index_bytes_counted']} bytes counted, "
          f"{result['index_bytes_in_redis']} bytes in Redis")  # fmt: skip
    for row in result["writes"]:
        print(f"  put ({row['bucket']:>7}): {row['redis_us_per_put']:>7} us in Redis, "
              f"{row['commands_per_put']:>6} commands, {row['client_us_per_put']:>7} us on the client")  # fmt: skip
    for row in result["queries"]:
        if "p50_ms" in row:
            print(f"  {row['query']:<22} {row['matches']:>7} matches  p50 {row['p50_ms']:>7} ms  "
                  f"p95 {row['p95_ms']:>7} ms  redis {row['redis_ms']:>7} ms  {row['commands']:>6} cmds")  # fmt: skip
        else:
            print(f"  {row['query']:<22} {row.get('refused') or row.get('error')}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
