"""Every knob of the service, read from the environment and `.env`, validated at start-up."""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import math
import os
import re
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from dotenv import dotenv_values
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


def parse_retry_schedule(value: str) -> tuple[float, ...]:
    """``"5,30,120"`` -> (5.0, 30.0, 120.0): the delays between a webhook delivery's attempts."""
    try:
        delays = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"WEBHOOK_RETRY_SCHEDULE must be seconds separated by commas, not {value!r}") from None
    if not delays or any(not 0 < delay <= 86_400 for delay in delays):
        raise ValueError("WEBHOOK_RETRY_SCHEDULE needs at least one delay, each above 0 and at most 86400 s")
    return delays


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


ORIGIN_RE = re.compile(r"^(https?)://([a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?$")
DEFAULT_PORTS = {"http": "80", "https": "443"}


@lru_cache(maxsize=16)
def parse_origins(value: str) -> tuple[str, ...]:
    """``"https://app.example.com, http://localhost:5173"`` as origins as browsers send them (scheme,
    host and port, lower case, no default port, no path), or ``("*",)``; ValueError names an entry
    that is no origin."""
    origins: list[str] = []
    for entry in (item.strip() for item in value.split(",")):
        if not entry:
            continue
        if entry == "*":
            origins.append(entry)
            continue
        match = ORIGIN_RE.fullmatch(entry.lower())
        port = match.group(3) if match else None
        if not match or (port is not None and not 0 < int(port) < 65536):
            raise ValueError(
                f"CORS_ORIGINS entry {entry[:100]!r} is not an origin: scheme://host[:port] with http or https, "
                "no path, no trailing slash (e.g. https://app.example.com)"
            )
        scheme, host = match.group(1), match.group(2)
        origins.append(f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}")
    if "*" in origins and len(origins) > 1:
        raise ValueError("CORS_ORIGINS is either * or a list of origins, not both")
    return tuple(dict.fromkeys(origins))


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

    # hide_input_in_errors: a refused setting must not print SECRET_KEY or a Redis password at start-up.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False, hide_input_in_errors=True)

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
    # The API's script calls down one pipelined connection per process (app/platform/redis_lane.py);
    # false: redis-py's pool, as before (a plain redis:// standalone data Redis only; TLS, unix and cluster never).
    redis_pipeline: bool = True
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

    # Webhooks (app/webhooks/): outbound safety, timeouts, retries and quotas.
    # http:// endpoints are refused unless this is true (https only by default).
    webhook_allow_http: bool = False
    # Hosts (names or IP addresses, comma-separated) a webhook may reach even though they resolve to a
    # loopback, private, link-local or metadata address; every other such URL is refused.
    webhook_allowed_hosts: str = ""
    webhook_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    webhook_read_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Seconds between the attempts of a failing delivery (the last one repeats), each with +-20 % jitter.
    webhook_retry_schedule: str = "5,30,120,600,3600"
    # An endpoint whose deliveries fail continuously for this long is disabled (the reason is on it).
    webhook_disable_after_seconds: int = Field(default=86_400, ge=1)
    # How often the worker looks for new changes to deliver.
    webhook_poll_seconds: int = Field(default=1, ge=1)
    # How long one worker holds an endpoint (renewed per delivery); a killed worker's hold lapses after it.
    webhook_lease_seconds: int = Field(default=30, ge=1)
    max_webhooks_per_tenant: int = Field(default=20, ge=1, le=1000)
    # Delivery attempts per second for one tenant, all its endpoints together (0 = unlimited).
    webhook_deliveries_per_second: int = Field(default=50, ge=0)
    # Deliveries waiting per endpoint at most (the change feeds hold the rest); finished ones kept per endpoint.
    webhook_max_backlog: int = Field(default=1000, ge=1)
    webhook_deliveries_kept: int = Field(default=1000, ge=1)
    # Object changes recorded for webhooks per tenant (only while a webhook subscribes to object events).
    webhook_object_feed_maxlen: int = Field(default=10_000, ge=1)

    # KV limits
    max_key_bytes: int = Field(default=256, ge=1)
    max_value_bytes: int = Field(default=2_097_152, ge=1)
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

    # Idempotency-Key on KV and object writes (README "Idempotent writes"): how long a response is
    # replayed, the largest response body kept (a larger one is replayed without its body), and the
    # lease of a running request's reservation (renewed while its body streams in).
    idempotency_ttl_seconds: int = Field(default=86_400, ge=1)
    idempotency_max_response_bytes: int = Field(default=1_048_576, ge=0)
    idempotency_lease_seconds: int = Field(default=60, ge=3)

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

    # Export and import (app/transfer/): a finished export's archive is kept (and counts against the
    # object quota) this long; archives are stored as volumes (objects) of at most this many bytes.
    transfer_export_ttl_seconds: int = Field(default=86_400, ge=60)
    transfer_volume_bytes: int = Field(default=268_435_456, ge=65_536)
    # A running export/import that renews no lease for this long had its worker stop: it is resumed
    # (at most transfer_max_attempts runs in all), then failed with a clear error.
    transfer_lease_seconds: int = Field(default=60, ge=2)
    transfer_max_attempts: int = Field(default=3, ge=1)
    transfer_pass_seconds: int = Field(default=30, ge=1)  # how often the worker looks for stopped jobs

    # Worker
    huey_workers: int = Field(default=2, ge=1)
    huey_worker_type: Literal["thread", "process", "greenlet"] = "thread"
    ttl_sweep_interval_seconds: int = Field(default=60, ge=1)
    # 9464, not node_exporter's port (taken on every Kubernetes node and many hosts).
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    # The worker's liveness (GET /health/live on the metrics port) fails when its scheduler, or every
    # worker thread, has not looped for this long (app/worker/heartbeat.py): above the longest task.
    worker_stuck_seconds: float = Field(default=300.0, gt=0)
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
    # A single-key PUT records its event in the write's own script (app/audit/service.py InlineEvent),
    # after the tenant's events this process handed to the worker this recently (written again, once
    # each by event id): the trail keeps the process's order though the worker writes those later.
    audit_inline_lookback_seconds: float = Field(default=5.0, gt=0)
    # Failed and throttled auth requests of one username: the first is recorded, the rest of the window
    # as one event with their count (app/audit/service.py), so anonymous traffic cannot flood a trail.
    audit_auth_failure_window_seconds: float = Field(default=60.0, gt=0)

    # KV entries written without a ttl (a new key; an update without one keeps its expiry): 0 = none.
    default_ttl: int = Field(default=0, ge=0, le=10 * 365 * 86_400)
    # GET /metrics of the API (false: 404; the worker's own metrics port is unaffected).
    enable_metrics: bool = True
    # true: LOG_LEVEL defaults to DEBUG (an explicit LOG_LEVEL wins). Never changes what clients see.
    debug: bool = False

    # The settings of the FastAPI/Redis/Huey KV store this project replaces, read so that its .env
    # works unchanged (README "Coming from ..."): each stands for one of ours (LEGACY_SETTINGS and
    # _apply_legacy_settings below), and naming both with different values refuses to start.
    redis_host: str | None = None
    redis_port: int | None = Field(default=None, ge=1, le=65535)
    redis_db: int | None = Field(default=None, ge=0, le=1_000_000)
    redis_password: str | None = None
    redis_huey_host: str | None = None
    redis_huey_port: int | None = Field(default=None, ge=1, le=65535)
    redis_huey_db: int | None = Field(default=None, ge=0, le=1_000_000)
    redis_huey_password: str | None = None
    api_v1_prefix: str | None = None
    max_key_size: int | None = Field(default=None, ge=1)
    max_value_size: int | None = Field(default=None, ge=1)
    redis_socket_connect_timeout: float | None = Field(default=None, gt=0)

    # CORS (app/platform/http/cors.py): browser pages on these origins (comma-separated, or *) may call
    # the API; empty = no CORS headers. Credentials (cookies) are never needed: the API takes bearer tokens.
    cors_origins: str = ""
    cors_allow_credentials: bool = False
    cors_max_age_seconds: int = Field(default=600, ge=0, le=86_400)  # how long a browser keeps a preflight

    # gRPC (app/grpc, `python -m app.grpc`, README "gRPC"): its own process beside the API. The port of
    # its server, and of its Prometheus metrics (GET /metrics; 0 turns it off).
    grpc_host: str = "0.0.0.0"  # noqa: S104 - reached from other pods
    grpc_port: int = Field(default=50051, ge=1, le=65535)
    grpc_metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from other pods
    grpc_metrics_port: int = Field(default=9465, ge=0, le=65535)
    # Seconds a stopping gRPC server lets running calls finish (watch streams end at once, resumable).
    grpc_shutdown_grace_seconds: float = Field(default=10.0, ge=0)

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

    @model_validator(mode="after")
    def _apply_legacy_settings(self) -> Settings:
        given = self.model_fields_set
        for legacy, ours in LEGACY_SETTINGS.items():
            value = getattr(self, legacy)
            if value is None:
                continue
            if ours in given and getattr(self, ours) != value:
                raise ValueError(
                    f"{legacy.upper()}={value} and {ours.upper()}={getattr(self, ours)} disagree: "
                    f"{legacy.upper()} is the earlier name of {ours.upper()}; set one of them"
                )
            setattr(self, ours, value)
        for url_field, parts in (("redis_url", "redis"), ("huey_redis_url", "redis_huey")):
            url = self._url_from_parts(url_field, parts)
            if url is None:
                continue
            if url_field in given and without_password(getattr(self, url_field)) != without_password(url):
                names = ", ".join(f"{parts.upper()}_{n}" for n in ("HOST", "PORT", "DB", "PASSWORD"))
                raise ValueError(
                    f"{url_field.upper()} ({without_password(getattr(self, url_field))}) and {names} "
                    f"({without_password(url)}) name different Redis servers: set one or the other"
                )
            setattr(self, url_field, url)
        if self.debug and "log_level" not in given:
            self.log_level = "DEBUG"
        return self

    def _url_from_parts(self, url_field: str, parts: str) -> str | None:
        """``redis://[:password@]host:port/db`` from REDIS_HOST/PORT/DB/PASSWORD (or the REDIS_HUEY_
        ones), None when none of them is set; a part that is not set keeps the URL's default."""
        host, port, db, password = (getattr(self, f"{parts}_{n}") for n in ("host", "port", "db", "password"))
        if host is None and port is None and db is None and password is None:
            return None
        default = urlsplit(getattr(self, url_field) if url_field in self.model_fields_set else _DEFAULT_URLS[url_field])
        scheme = default.scheme or "redis"
        host = host or default.hostname or "127.0.0.1"
        port = port or default.port or 6379
        db = db if db is not None else int((default.path or "/0").strip("/") or 0)
        auth = f":{quote(password, safe='')}@" if password else ""
        host_text = f"[{host}]" if ":" in host else host
        return f"{scheme}://{auth}{host_text}:{port}/{db}"

    @property
    def data_redis_given(self) -> bool:
        """REDIS_URL or REDIS_HOST/PORT/... is set (`make run` then starts no data Redis of its own)."""
        return "redis_url" in self.model_fields_set

    @property
    def queue_redis_given(self) -> bool:
        return "huey_redis_url" in self.model_fields_set

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        parse_networks(value)  # a typo fails at start-up, not silently
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_webhook_retry_schedule(cls, value: str) -> str:
        parse_retry_schedule(value)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        parse_origins(value)
        return value

    @model_validator(mode="after")
    def _check_cors(self) -> Settings:
        if self.cors_allow_credentials and "*" in parse_origins(self.cors_origins):
            raise ValueError("CORS_ORIGINS=* cannot be combined with CORS_ALLOW_CREDENTIALS: list the origins")
        return self

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return parse_origins(self.cors_origins)

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return parse_retry_schedule(self.webhook_retry_schedule)

    @property
    def webhook_allowed_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower().strip("[]") for h in self.webhook_allowed_hosts.split(",") if h.strip())

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def data_redis_is_cluster(self) -> bool:
        return self.redis_cluster or self.redis_url.startswith("redis+cluster://")


LEGACY_SETTINGS = {
    "api_v1_prefix": "api_prefix",
    "max_key_size": "max_key_bytes",
    "max_value_size": "max_value_bytes",
    "redis_socket_connect_timeout": "redis_connect_timeout",
}
"""An earlier setting name → ours (the Redis host/port/db/password parts make REDIS_URL/HUEY_REDIS_URL)."""
LEGACY_URL_PARTS = tuple(
    f"{role}_{part}" for role in ("redis", "redis_huey") for part in ("host", "port", "db", "password")
)
_DEFAULT_URLS = {
    "redis_url": Settings.model_fields["redis_url"].default,
    "huey_redis_url": Settings.model_fields["huey_redis_url"].default,
}
# Not settings although they look like ours: read by gunicorn.conf.py, make run, prometheus_client, kvctl.
_NOT_SETTINGS = {"HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_WORKERS", "PROMETHEUS_MULTIPROC_DIR", "CI"}
_SETTING_PREFIXES = (
    "REDIS_",
    "HUEY_",
    "MAX_",
    "QUOTA_",
    "RATE_LIMIT_",
    "WATCH_",
    "AUDIT_",
    "OBJECT_",
    "LOG_",
    "AUTH_",
    "LOGIN_",
    "BCRYPT_",
    "ACCESS_TOKEN_",
    "REFRESH_TOKEN_",
    "KV_",
    "KVSTORE_",
    "TTL_",
    "DELETED_",
    "MULTIPART_",
    "WORKER_",
    "TASK_",
    "FEED_",
    "DEFAULT_",
    "TOKEN_",
    "ENABLE_",
    "TRUSTED_",
    "SECRET_",
    "API_",
    "CORS_",
    "ENVIRONMENT",
)


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def unknown_settings(environ: dict[str, str] | None = None, dotenv_path: str | Path = ".env") -> list[str]:
    """Variables of the environment and ``.env`` that look like settings of this service (by their
    prefix) but are none, each with what it may have meant: ``MAX_VALUE_BYTE (did you mean
    MAX_VALUE_BYTES?)``. The processes log them at start-up, as they would otherwise be ignored."""
    names = set(os.environ if environ is None else environ)
    with contextlib.suppress(OSError):
        names |= {name for name in dotenv_values(dotenv_path) if name}
    known = {name.upper() for name in Settings.model_fields}
    found = []
    for name in sorted(names):
        upper = name.upper()
        if upper in known or upper in _NOT_SETTINGS or not upper.startswith(_SETTING_PREFIXES):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
