"""What search costs in Redis commands: nothing on a bucket without search, and on a bucket with
search, work that follows the terms a write changes and, for a query, the matches of its rarest
term, never the size of the bucket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from app.kv.search import KV_SEARCH
from app.kv.store import KV_BUCKET_CREATE, KV_PUT, write_header
from app.platform import keyspace as keys
from app.platform.keyspace import KeySchema

WORDS = " ".join(f"word{i}" for i in range(300))


def commands(client: redis.Redis, run: Callable[[], Any]) -> int:
    client.config_resetstat()
    run()
    stats = client.info("commandstats")
    skip = ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_evalsha", "cmdstat_eval")
    return sum(v["calls"] for k, v in stats.items() if k not in skip and not k.startswith("cmdstat_script"))


def test_a_put_to_a_bucket_without_search_runs_no_command_of_the_index(settings):
    client = redis.Redis.from_url(settings.redis_url)
    client.flushall()
    schema = KeySchema("t1")
    put = client.register_script(KV_PUT.source)
    create = client.register_script(KV_BUCKET_CREATE.source)
    prefix = keys.tenant_prefix("t1")

    def put_to(bucket: str, key: str, text: str) -> Callable[[], Any]:
        args = [*write_header(settings, "t1", bucket), key, f'{{"t":"{text}"}}', "", "", "", "put", "", ""]
        return lambda: put(keys=[schema.bucket(bucket)], args=args)

    # One bucket per measured write, so each is the same second write of its bucket.
    for name, search in (("plain", "0"), ("plain2", "0"), ("indexed", "1"), ("indexed2", "1")):
        create(keys=[schema.bucket(name)], args=[prefix, name, 10, 0, 0, "", 0, search])
        put_to(name, "k", "seed")()  # an update below, not a create
    plain_short = commands(client, put_to("plain", "k", "one"))
    plain_long = commands(client, put_to("plain2", "k", WORDS))
    indexed_short = commands(client, put_to("indexed", "k", "one"))
    indexed_long = commands(client, put_to("indexed2", "k", WORDS))
    assert plain_short == plain_long  # the text is never looked at
    for plain_id in (1, 2):
        assert not list(client.scan_iter(match=f"{schema.bucket_prefix(plain_id)}s*"))
    # With search on, about two commands per term changed (its posting list and the term list).
    assert indexed_short > plain_short
    assert 2 * 300 - 5 <= indexed_long - indexed_short <= 2 * 300 + 5
    client.close()


def test_a_query_visits_the_rarest_terms_matches_not_the_bucket(settings):
    client = redis.Redis.from_url(settings.redis_url)
    client.flushall()
    schema = KeySchema("t1")
    prefix = keys.tenant_prefix("t1")
    put = client.register_script(KV_PUT.source)
    create = client.register_script(KV_BUCKET_CREATE.source)
    search = client.register_script(KV_SEARCH.source)
    create(keys=[schema.bucket("b")], args=[prefix, "b", 10, 0, 0, "", 0, "1"])

    def load(n: int) -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            text = "common rare" if i < 5 else "common"
            args = [*write_header(settings, "t1", "b"), f"k{i:06d}", f'{{"t":"{text}"}}', "", "", "", "put", "", ""]
            put(keys=[schema.bucket("b")], args=args, client=pipe)
        pipe.execute()

    def query() -> None:
        args = [prefix, 20, "", "", "", 20000, 200, "", "b", "*", b"+t rare", b"+t common"]
        assert search(keys=[schema.search_buckets()], args=args)[1] == 5

    load(100)
    small = commands(client, query)
    load(3000)
    large = commands(client, query)
    assert small == large  # 5 candidates either way
    client.close()
