"""Every knob of the service, read from the environment and `.env`, validated at start-up."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(".data")
DEV_SECRET_FILE = DATA_DIR / "secret_key"
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 128
"""A production key needs at least this many bits by the estimate of :func:`secret_key_weakness`."""
PLACEHOLDER_RE = re.compile(r"(?:^|[^a-z0-9])(replace|change|example|placeholder|secret|password)", re.I)
"""A word templates use, at the start of the key or after a separator (a random key holds one by chance
about once in a billion)."""
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """``"127.0.0.1, 10.0.0.0/8, ::1"`` as networks (an address is a network of one); ValueError
    names an entry that is neither."""
    networks = []
    for entry in (item.strip() for item in value.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


def secret_key_weakness(key: str) -> str | None:
    """Why ``key`` must not sign tokens in staging or production, None when it may.

    Refused: shorter than MIN_SECRET_LENGTH; a placeholder (a word such as REPLACE_ME or changeme, as
    templates ship); or less than MIN_SECRET_BITS of entropy, estimated per character from the classes
    used (digits 3.3 bits, one letter case 4.7, both cases 5.7, with symbols 6) and capped by the number
    of distinct characters; a repeated pattern (``abab...``) fails however long it is."""
    if len(key) < MIN_SECRET_LENGTH:
        return f"it is shorter than {MIN_SECRET_LENGTH} characters"
    placeholder = PLACEHOLDER_RE.search(key)
    if placeholder:
        return f"it looks like a placeholder (contains {placeholder.group(1)!r})"
    alphabet = 0
    alphabet += 10 if any(c.isdigit() for c in key) else 0
    alphabet += 26 if any(c.islower() for c in key) else 0
    alphabet += 26 if any(c.isupper() for c in key) else 0
    alphabet += 32 if any(not c.isalnum() for c in key) else 0
    distinct = len(set(key))
    bits = len(key) * math.log2(max(2, min(alphabet, distinct)))
    if key in (key + key)[1:-1]:  # a repeated pattern: "abab...", "0123456789" * 4
        return "it is one short pattern repeated"
    if bits < MIN_SECRET_BITS or distinct < 10:
        return f"it has too little entropy (about {bits:.0f} bits from {distinct} distinct characters)"
    return None


def _read_development_secret() -> str | None:
    try:
        key = DEV_SECRET_FILE.read_text().strip()
    except OSError:
        return None
    return key if len(key) >= MIN_SECRET_LENGTH else None


def _development_secret() -> str:
    """A random key generated once and kept in ./.data/ so tokens survive a restart.

    `make run` starts the API and the worker at once: the key is written to a private temp
    file and published with link(), which fails when another process got there first, so
    every process ends up with the one key on disk."""
    existing = _read_development_secret()
    if existing:
        return existing
    key = secrets.token_urlsafe(48)
    try:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=DATA_DIR, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as temp:
                temp.write(key)
            try:
                os.link(temp_name, DEV_SECRET_FILE)
            except FileExistsError:
                winner = _read_development_secret()
                if winner:
                    return winner
                os.replace(temp_name, DEV_SECRET_FILE)  # an unusable (too short) key file
                return _read_development_secret() or key
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
    except OSError:
        pass  # a read-only tree still starts; tokens just do not survive a restart
    return key


class Settings(BaseSettings):
    """Configuration of the API and the worker; `.env.example` documents each field."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "test", "staging", "production"] = "development"
    secret_key: str = ""
    api_prefix: str = "/api/v1"

    # Redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    huey_redis_url: str = "redis://127.0.0.1:6380/0"
    redis_max_connections: int = Field(default=256, ge=1)
    redis_socket_timeout: float = Field(default=5.0, gt=0)
    redis_connect_timeout: float = Field(default=2.0, gt=0)
    redis_retry_after_seconds: int = Field(default=2, ge=1)
    # fsync policy of the redis-server processes `make run` starts: everysec may lose the last second
    # of acknowledged writes if the machine (not just Redis) crashes; always loses none (slower writes).
    redis_appendfsync: Literal["everysec", "always", "no"] = "everysec"
    # maxmemory of the redis-server processes `make run` starts (policy noeviction: a full data Redis
    # refuses writes with 507, it never drops keys). Deployments set theirs in compose and the manifests.
    redis_maxmemory: str = Field(default="1gb", pattern=r"^[0-9]+(b|kb|mb|gb)?$")
    huey_redis_maxmemory: str = Field(default="256mb", pattern=r"^[0-9]+(b|kb|mb|gb)?$")

    # Auth
    access_token_expire_minutes: int = Field(default=30, ge=1)
    refresh_token_expire_days: int = Field(default=7, ge=1)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    # Failed logins (app/auth/throttle.py): at most login_max_failures per username and client address,
    # and login_ip_max_failures per client address (any usernames), within the window.
    login_max_failures: int = Field(default=5, ge=1)
    login_ip_max_failures: int = Field(default=50, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    # Anonymous /auth requests (register, login, token, refresh, logout) per client address: a GCRA
    # budget of auth_rate_limit_burst requests refilled at auth_rate_limit_per_minute (0 = off).
    auth_rate_limit_per_minute: float = Field(default=30.0, ge=0)
    auth_rate_limit_burst: int = Field(default=10, ge=1)
    # bcrypt hashes/verifications running at once in one API process (more wait, served round-robin
    # by client address), so bcrypt never takes every core or every thread of the event loop's pool.
    bcrypt_max_concurrency: int = Field(default=2, ge=1)
    # How much lower the bcrypt threads' CPU priority (nice value, Linux) is than the event loop's.
    bcrypt_niceness: int = Field(default=0, ge=0, le=19)
    # Proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client; the
    # address of any other peer is the client's. gunicorn.conf.py hands the same list to uvicorn.
    trusted_proxies: str = "127.0.0.1,::1"
    token_cache_size: int = Field(default=10_000, ge=0)
    # API keys (app/auth/api_keys.py): at most this many per tenant, and at most this lifetime.
    max_api_keys_per_tenant: int = Field(default=100, ge=1, le=10_000)

    # GET and PUT of one key skip FastAPI's dependency resolution when the request is the plain case
    # (app/platform/http/fastpath.py); false sends every request through FastAPI's own handler.
    kv_fast_paths: bool = True

    # KV limits
    max_key_bytes: int = Field(default=256, ge=1)
    max_value_bytes: int = Field(default=1_048_576, ge=1)
    max_tags: int = Field(default=16, ge=0)
    max_tag_bytes: int = Field(default=128, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    max_batch_items: int = Field(default=1000, ge=1)
    default_history: int = Field(default=10, ge=1, le=1000)
    max_history: int = Field(default=1000, ge=1)
    bucket_inline_delete_max_keys: int = Field(default=1000, ge=0)
    deleted_history_ttl_seconds: int = Field(default=86_400, ge=1)  # history of a deleted key
    merge_patch_max_retries: int = Field(default=16, ge=1)
    # Hostile input (app/platform/http/middleware.py, app/kv/schemas.py): a JSON request body over this size is
    # 413 (object uploads have their own streaming limit); headers over theirs 431; a value nested
    # deeper than max_json_depth 422.
    max_request_body_bytes: int = Field(default=16_777_216, ge=1024)  # batches; single-key writes get less
    # JSON bodies of routes other than KV writes and batches (auth, buckets, multipart, ...).
    max_small_request_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_request_header_bytes: int = Field(default=16_384, ge=1024)  # all names and values; over it 431
    max_json_depth: int = Field(default=64, ge=1, le=500)

    # Tenant quotas (defaults; per-tenant overrides live in Redis, see app/tenancy/service.py). 0 = unlimited.
    quota_max_keys: int = Field(default=1_000_000, ge=0)
    quota_max_kv_bytes: int = Field(default=1_073_741_824, ge=0)
    quota_max_object_bytes: int = Field(default=10_737_418_240, ge=0)
    quota_max_buckets: int = Field(default=100, ge=0)

    # Per-tenant request rate limit (0 = off); each API process takes tokens from Redis in chunks.
    rate_limit_per_second: float = Field(default=200.0, ge=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    rate_limit_local_share: float = Field(default=0.05, gt=0, le=1)  # chunk = share of the rate, at least 1

    # Watch
    watch_stream_maxlen: int = Field(default=10_000, ge=10)
    feed_value_max_bytes: int = Field(default=65_536, ge=0)  # larger values are not copied into the feed
    deleted_feed_ttl_seconds: int = Field(default=3600, ge=1)  # a deleted bucket's feed, for its watchers
    watch_heartbeat_seconds: float = Field(default=15.0, gt=0)
    watch_queue_size: int = Field(default=1000, ge=1)
    max_watch_streams_per_tenant: int = Field(default=100, ge=1)
    # Buckets one API process follows at once (one blocking Redis connection each); beyond it 503.
    watch_max_buckets_per_process: int = Field(default=1000, ge=1)
    # A watcher that fell behind (queue full) and still does not read for this long is cut off
    # without the event that tells it where to resume.
    watch_slow_client_grace_seconds: float = Field(default=10.0, gt=0)

    # Objects
    max_object_bytes: int = Field(default=1_073_741_824, ge=1)
    default_chunk_size: int = Field(default=1_048_576, ge=65_536, le=8_388_608)
    object_gc_grace_seconds: int = Field(default=300, ge=0)
    multipart_upload_expire_seconds: int = Field(default=86_400, ge=60)
    # An upload (PUT body, part, compaction) that writes nothing for this long is abandoned and collected.
    object_upload_idle_seconds: int = Field(default=3600, ge=10)
    max_object_name_bytes: int = Field(default=1024, ge=1, le=4096)
    max_object_metadata_bytes: int = Field(default=8192, ge=0)  # description + X-Object-Meta-* headers
    max_multipart_part_bytes: int = Field(default=268_435_456, ge=1)
    max_multipart_parts: int = Field(default=10_000, ge=1)
    object_gc_interval_seconds: int = Field(default=30, ge=1)  # the worker's garbage/compaction pass

    # Worker
    huey_workers: int = Field(default=2, ge=1)
    huey_worker_type: Literal["thread", "process", "greenlet"] = "thread"
    ttl_sweep_interval_seconds: int = Field(default=60, ge=1)
    worker_metrics_port: int = Field(default=9100, ge=0, le=65535)
    audit_retention_days: int = Field(default=90, ge=1)
    audit_max_events: int = Field(default=100_000, ge=100)
    # Worker infrastructure and audit delivery (app/worker/base.py, app/audit/service.py)
    worker_metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from other pods
    task_max_retries: int = Field(default=5, ge=0)  # a task failing on a Redis error is retried
    # Run the tasks the API enqueues inline, in a thread of the API process, instead of queueing them
    # (tests and single-process demos; never with a real worker).
    huey_immediate: bool = False
    task_retry_delay_seconds: float = Field(default=1.0, ge=0)  # doubled after each retry
    audit_outbox_drain_seconds: int = Field(default=30, ge=1)  # how often the worker empties outboxes
    audit_dedupe_window_seconds: int = Field(default=3600, ge=60)  # a redelivered event is dropped
    audit_batch_max_events: int = Field(default=500, ge=1)  # events per Huey task
    audit_buffer_max_events: int = Field(default=100_000, ge=100)  # held in API memory if both Redis fail
    audit_queue_retry_seconds: float = Field(default=5.0, gt=0)  # after a queue failure, outbox only
    audit_batch_linger_seconds: float = Field(default=0.02, ge=0)  # gather events into fewer, larger tasks
    # Failed and throttled auth requests of one username: the first is recorded, the rest of the window
    # as one event with their count (app/audit/service.py), so anonymous traffic cannot flood a trail.
    audit_auth_failure_window_seconds: float = Field(default=60.0, gt=0)

    # Observability
    log_level: str = "INFO"
    # auto: readable text lines when stdout is a terminal (make run), JSON lines otherwise (containers)
    log_format: Literal["auto", "json", "text"] = "auto"
    log_health_requests: bool = False

    @model_validator(mode="after")
    def _check_secret(self) -> Settings:
        if not self.secret_key and self.environment == "development":
            self.secret_key = _development_secret()
            return self
        if len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"SECRET_KEY must be set to at least {MIN_SECRET_LENGTH} characters outside "
                f"ENVIRONMENT=development (generate one with: {GENERATE_HINT})"
            )
        weakness = secret_key_weakness(self.secret_key)
        if weakness and self.environment in ("staging", "production"):
            raise ValueError(
                f"SECRET_KEY is not usable in ENVIRONMENT={self.environment}: {weakness}. It signs every "
                f"token: set it to a random value of your own (generate one with: {GENERATE_HINT})"
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        parse_networks(value)  # a typo fails at start-up, not silently
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def data_redis_is_cluster(self) -> bool:
        return self.redis_cluster or self.redis_url.startswith("redis+cluster://")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
