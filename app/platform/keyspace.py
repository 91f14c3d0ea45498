"""The only place that builds Redis key names.

Every key of a tenant starts with ``t:{<tenant_id>}:``; the braces are a Redis Cluster
hash tag, so one tenant's keys share one slot and one Lua script may touch them all.
Keys of one bucket use the bucket's numeric incarnation id, not its name, so a bucket
that is deleted and created again never sees the old bucket's leftovers while the
worker is still purging them. A user's key is always the last part of a Redis key.

Lua scripts derive per-bucket key names from the tenant prefix with the functions of
``LUA_PRELUDE`` below, which mirror the Python methods one for one.
"""

from __future__ import annotations

from dataclasses import dataclass

TTL_SCHEDULE = "ttl:schedule"
"""Sorted set: member tenant id, score the earliest expiry (ms) among its keys."""

TRASH_TENANTS = "trash:tenants"
"""Set of tenant ids with deleted buckets whose keys the worker still has to purge."""

AUDIT_OUTBOX_TENANTS = "audit:outbox:tenants"
"""Set of tenant ids whose audit outbox holds undelivered events."""

HELD_SCHEDULE = "kv:held:schedule"
"""Sorted set: member tenant id, score the earliest time (ms) when the history of one of its deleted
keys, or the change feed of one of its deleted buckets, expires: the worker releases those bytes."""

OBJECT_GC_SCHEDULE = "objects:gc:schedule"
"""Sorted set: member tenant id, score (ms) when its object garbage, compactions or deleted
object buckets may next need the worker; never later than the real due time."""

WEBHOOK_TENANTS = "webhooks:tenants"
"""Set of tenant ids that have at least one webhook: the worker's delivery round visits them."""

TRANSFER_SCHEDULE = "transfer:schedule"
"""Sorted set: member ``<tenant id>/<job id>`` of an export or import, score (ms) when the worker's
transfer pass must look at it: the lease of a queued or running job (a worker that stopped), the
expiry of a finished one (its archive is deleted)."""

SESSION_REVOCATIONS = "auth:session_revocations"
"""Stream of ended sessions (``sid``) and tenant-wide session cut-offs (``tenant``, ``before``,
``keep``), read by every API process; trimmed to the access-token lifetime."""


def username_claim(username: str) -> str:
    """String ``user:{<username>}`` -> tenant id: the atomic claim of a username."""
    return f"user:{{{username}}}"


def email_claim(email: str) -> str:
    """String ``email:{<email>}`` -> tenant id: the atomic claim of an email address."""
    return f"email:{{{email}}}"


def login_failures(username: str, address: str) -> str:
    """String counter ``login_failures:{<address>}:<username>``: failed logins of a username from one
    client address (app/auth/throttle.py), expiring with the failure window."""
    return f"login_failures:{{{address}}}:{username}"


def login_address_failures(address: str) -> str:
    """String counter ``login_failures:{<address>}``: failed logins from one client address, any
    usernames; in the same slot as the address's per-username counters."""
    return f"login_failures:{{{address}}}"


def auth_rate(address: str) -> str:
    """String ``auth_rate:{<address>}``: the GCRA theoretical arrival time (ms) of a client address's
    budget of anonymous /auth requests."""
    return f"auth_rate:{{{address}}}"


def tenant_prefix(tenant_id: str) -> str:
    """``t:{<tenant_id>}:``, the prefix of every key of one tenant."""
    return f"t:{{{tenant_id}}}:"


@dataclass(frozen=True, slots=True)
class KeySchema:
    """Key names of one tenant."""

    tenant_id: str

    @property
    def prefix(self) -> str:
        return tenant_prefix(self.tenant_id)

    def user(self) -> str:
        """Hash ``t:{tid}:user``: username, email, password_hash, created_at, is_active."""
        return f"{self.prefix}user"

    def refresh_token(self, jti: str) -> str:
        """Hash ``t:{tid}:refresh:<jti>``: family, state (active|spent); expires with the token."""
        return f"{self.prefix}refresh:{jti}"

    def refresh_family(self, family: str) -> str:
        """String ``t:{tid}:refresh_family:<family>``: "revoked" once a spent token was replayed."""
        return f"{self.prefix}refresh_family:{family}"

    def api_keys(self) -> str:
        """Hash ``t:{tid}:api_keys``: key id -> JSON record (name, sha256 of the secret, scopes,
        buckets, key_prefix, created_ms, expires_ms)."""
        return f"{self.prefix}api_keys"

    def api_keys_used(self) -> str:
        """Hash ``t:{tid}:api_keys_used``: key id -> when it was last used (ms, written at most once a
        minute per key and API process)."""
        return f"{self.prefix}api_keys_used"

    def sessions_revoked(self) -> str:
        """Hash ``t:{tid}:sessions_revoked``: ``before`` (ms) ends every session begun earlier except
        ``keep``; kept as long as a refresh token lives."""
        return f"{self.prefix}sessions_revoked"

    def usage(self) -> str:
        """Hash ``t:{tid}:usage``: keys, kv_bytes, kv_history_bytes, kv_feed_bytes, buckets, objects,
        object_bytes, object_pending_bytes, object_garbage_bytes."""
        return f"{self.prefix}usage"

    def limits(self) -> str:
        """Hash ``t:{tid}:limits``: per-tenant quota overrides (field = quota name)."""
        return f"{self.prefix}limits"

    def rate_limit(self) -> str:
        """String ``t:{tid}:ratelimit``: the GCRA theoretical arrival time (ms) of the request budget."""
        return f"{self.prefix}ratelimit"

    def sequences(self) -> str:
        """Hash ``t:{tid}:seq``: counters that hand out ids (field ``bucket``, ``upload``...)."""
        return f"{self.prefix}seq"

    def buckets(self) -> str:
        """Sorted set ``t:{tid}:buckets`` (score 0, lex order): names of the KV buckets."""
        return f"{self.prefix}buckets"

    def bucket(self, name: str) -> str:
        """Hash ``t:{tid}:bucket:<name>``: id, rev, keys, bytes, history, ttl, max_value_size,
        description, created_at; vfloor (a new key's version starts above it), vmax (the highest
        version given out); hbytes (the past-history bytes of its keys, live and deleted), fb (the
        bytes of its change feed); search ('1' on, 'b' building, 'd' dropping), scursor, sdocs, slen,
        sbytes (full-text search: app/kv/lua/_search_lib.lua)."""
        return f"{self.prefix}bucket:{name}"

    def version_floors(self) -> str:
        """Hash ``t:{tid}:vfloor``: bucket name -> the highest key version its deleted incarnations
        gave out; a bucket created again under that name starts its keys' versions above it."""
        return f"{self.prefix}vfloor"

    def ttl_buckets(self) -> str:
        """Sorted set ``t:{tid}:ttl_buckets``: bucket name, score its earliest expiry (ms)."""
        return f"{self.prefix}ttl_buckets"

    def ttl_scheduled(self) -> str:
        """String ``t:{tid}:ttl_scheduled``: the score this tenant holds in ``ttl:schedule``."""
        return f"{self.prefix}ttl_scheduled"

    def history_buckets(self) -> str:
        """Sorted set ``t:{tid}:gone_buckets``: bucket name, score the earliest expiry (ms) of the
        history of one of its deleted keys (the worker then releases those bytes)."""
        return f"{self.prefix}gone_buckets"

    def dead_feeds(self) -> str:
        """Sorted set ``t:{tid}:dead_feeds``: ``<bucket id>:<bytes>`` of the change feed of a deleted
        bucket, kept for its watchers, score when it expires (ms); its bytes count until then."""
        return f"{self.prefix}dead_feeds"

    def held_scheduled(self) -> str:
        """String ``t:{tid}:held_scheduled``: the score this tenant holds in ``kv:held:schedule``."""
        return f"{self.prefix}held_scheduled"

    def trash(self) -> str:
        """List ``t:{tid}:trash``: ids of deleted buckets whose keys the worker still purges."""
        return f"{self.prefix}trash"

    def audit(self) -> str:
        """Stream ``t:{tid}:audit``: the tenant's audit trail."""
        return f"{self.prefix}audit"

    def audit_outbox(self) -> str:
        """List ``t:{tid}:audit_outbox``: audit events waiting for the queue Redis."""
        return f"{self.prefix}audit_outbox"

    def audit_ids(self) -> str:
        """Sorted set ``t:{tid}:audit_ids``: event id, score when it was recorded (ms); a redelivered
        event whose id is still here is not recorded twice."""
        return f"{self.prefix}audit_ids"

    def watch_streams(self) -> str:
        """Sorted set ``t:{tid}:watchers``: open watch stream id, score its lease expiry (ms)."""
        return f"{self.prefix}watchers"

    def idempotency(self, key_digest: str) -> str:
        """Hash ``t:{tid}:idem:<sha256 of the Idempotency-Key>``: state (pending|done), owner (the
        request holding a pending reservation), fp (sha256 of the request), blen (its body length),
        status, headers (JSON), body, omitted (the body's length when it was too large to keep);
        expires after the idempotency window (a pending one after its lease)."""
        return f"{self.prefix}idem:{key_digest}"

    # Keys of one bucket incarnation, ``t:{tid}:b:<bucket_id>:...``
    def bucket_prefix(self, bucket_id: int | str) -> str:
        return f"{self.prefix}b:{bucket_id}:"

    def entry(self, bucket_id: int | str, key: str) -> str:
        """Hash ``t:{tid}:b:<id>:k:<key>``: v (JSON text), enc, ver, rev, c, u, x (expiry ms
        or absent), tags (JSON object); hb (bytes of the key's history list), hh (bytes of its first
        record, the current revision's; absent on an entry written before they were kept); s (its
        search terms, in a bucket with search on)."""
        return f"{self.bucket_prefix(bucket_id)}k:{key}"

    def history(self, bucket_id: int | str, key: str) -> str:
        """List ``t:{tid}:b:<id>:h:<key>``: JSON of past revisions, newest first."""
        return f"{self.bucket_prefix(bucket_id)}h:{key}"

    def key_index(self, bucket_id: int | str) -> str:
        """Sorted set ``t:{tid}:b:<id>:idx`` (score 0, lex order): every key of the bucket."""
        return f"{self.bucket_prefix(bucket_id)}idx"

    def ttl_index(self, bucket_id: int | str) -> str:
        """Sorted set ``t:{tid}:b:<id>:ttl``: key, score its expiry (ms)."""
        return f"{self.bucket_prefix(bucket_id)}ttl"

    def tag_index(self, bucket_id: int | str, tag: str, value: str) -> str:
        """Sorted set ``t:{tid}:b:<id>:tag:<tag>=<value>`` (score 0, lex): keys with that tag.
        Tag names never contain ``=``."""
        return f"{self.bucket_prefix(bucket_id)}tag:{tag}={value}"

    def tag_registry(self, bucket_id: int | str) -> str:
        """Set ``t:{tid}:b:<id>:tags``: names of the bucket's tag index keys (for bucket purge)."""
        return f"{self.bucket_prefix(bucket_id)}tags"

    def deleted_keys(self, bucket_id: int | str) -> str:
        """Sorted set ``t:{tid}:b:<id>:gone``: deleted or expired keys whose history is still kept,
        score when that history expires (ms); a bucket purge finds those histories here."""
        return f"{self.bucket_prefix(bucket_id)}gone"

    def deleted_history_bytes(self, bucket_id: int | str) -> str:
        """Hash ``t:{tid}:b:<id>:gone_bytes``: deleted or expired key -> bytes of its history list
        (counted in ``kv_history_bytes`` until it expires)."""
        return f"{self.bucket_prefix(bucket_id)}gone_bytes"

    def version_floors_by_slot(self, bucket_id: int | str) -> str:
        """Hash ``t:{tid}:b:<id>:vslots``: slot (a djb2 hash of a key name mod 4096)
        -> the highest version a deleted or expired key of that slot had. A key created with no
        history left starts above its slot's floor (at most 4096 fields)."""
        return f"{self.bucket_prefix(bucket_id)}vslots"

    def feed(self, bucket_id: int | str) -> str:
        """Stream ``t:{tid}:b:<id>:feed``: change events, entry id ``<revision>-0``."""
        return f"{self.bucket_prefix(bucket_id)}feed"

    # Full-text search of a bucket with search on (app/kv/lua/_search_lib.lua)
    def search_posting(self, bucket_id: int | str, term: str) -> str:
        """Sorted set ``t:{tid}:b:<id>:s:<term>``: key -> how often ``term`` occurs in its entry."""
        return f"{self.bucket_prefix(bucket_id)}s:{term}"

    def search_terms(self, bucket_id: int | str) -> str:
        """Sorted set ``t:{tid}:b:<id>:sterms``: term -> how many entries hold it (its posting lists)."""
        return f"{self.bucket_prefix(bucket_id)}sterms"

    def search_buckets(self) -> str:
        """Sorted set ``t:{tid}:search_buckets`` (score 0, lex order): the KV buckets with search on."""
        return f"{self.prefix}search_buckets"

    # Objects
    def object_buckets(self) -> str:
        """Sorted set ``t:{tid}:obuckets`` (score 0, lex order): names of object buckets."""
        return f"{self.prefix}obuckets"

    def object_bucket(self, name: str) -> str:
        """Hash ``t:{tid}:obucket:<name>``: id, chunk_size, max_object_size (0 = the global
        limit), description, created_at (ms), objects, bytes."""
        return f"{self.prefix}obucket:{name}"

    def object_prefix(self, bucket_id: int | str) -> str:
        return f"{self.prefix}o:{bucket_id}:"

    def object_meta(self, bucket_id: int | str, name: str) -> str:
        """Hash ``t:{tid}:o:<id>:m:<name>``: segs (``<upload id>:<size>:<chunks>`` joined by
        ``,``; one segment, or one per multipart part until compaction), size, sha256, chunks,
        chunk_size, ctype, desc, meta (JSON object), ver, c, u (ms)."""
        return f"{self.object_prefix(bucket_id)}m:{name}"

    def object_index(self, bucket_id: int | str) -> str:
        """Sorted set ``t:{tid}:o:<id>:idx`` (score 0, lex order): object names."""
        return f"{self.object_prefix(bucket_id)}idx"

    def upload(self, upload_id: str) -> str:
        """Hash ``t:{tid}:up:<upload_id>``: kind (put|part|compact|multipart), state
        (pending|garbage|collecting|aborted), chunks (upper bound of chunk indexes written).
        A multipart upload adds bid, bucket, name, ctype, desc, meta, chunk_size, max, c, x
        (expiry ms) and ``p:<n>`` = ``<part upload id>:<size>:<chunks>:<sha256>`` per part.
        Only pending, multipart and garbage ids have one; a live object's chunks do not."""
        return f"{self.prefix}up:{upload_id}"

    def chunk(self, upload_id: str, index: int) -> str:
        """String ``t:{tid}:ch:<upload_id>:<index>``: one chunk of an object's content."""
        return f"{self.prefix}ch:{upload_id}:{index}"

    def garbage(self) -> str:
        """Sorted set ``t:{tid}:garbage``: upload id whose chunks may go, score when (ms).
        A pending upload is here too, with its idle deadline, until it commits."""
        return f"{self.prefix}garbage"

    def object_compactions(self) -> str:
        """Sorted set ``t:{tid}:ocompact``: ``<bucket id>:<object name>`` to rewrite into
        uniform chunks, score when (ms)."""
        return f"{self.prefix}ocompact"

    def object_trash(self) -> str:
        """Sorted set ``t:{tid}:otrash``: ids of force-deleted object buckets whose objects the
        worker still purges, score when (ms)."""
        return f"{self.prefix}otrash"

    # Webhooks (app/webhooks/)
    def webhooks(self) -> str:
        """Hash ``t:{tid}:hooks``: webhook id -> JSON record (url, secret, buckets, events, key_prefix,
        description, enabled, disabled_reason, failing_since_ms, created_ms, updated_ms)."""
        return f"{self.prefix}hooks"

    def webhook_cursors(self, hook_id: str) -> str:
        """Hash ``t:{tid}:hook:<id>:cur``: ``kv:<bucket name>`` -> ``<bucket id>:<revision>`` delivered
        up to; ``obj`` -> the object feed sequence number read up to."""
        return f"{self.prefix}hook:{hook_id}:cur"

    def webhook_queue(self, hook_id: str) -> str:
        """Sorted set ``t:{tid}:hook:<id>:q``: delivery sequence numbers waiting, score the same number
        (delivered oldest first, one at a time)."""
        return f"{self.prefix}hook:{hook_id}:q"

    def webhook_deliveries(self, hook_id: str) -> str:
        """Hash ``t:{tid}:hook:<id>:d``: delivery sequence number -> JSON record (event, attempts, last
        status, excerpt, latency, next attempt, state)."""
        return f"{self.prefix}hook:{hook_id}:d"

    def webhook_log(self, hook_id: str) -> str:
        """Sorted set ``t:{tid}:hook:<id>:log``: every kept delivery, score its sequence number."""
        return f"{self.prefix}hook:{hook_id}:log"

    def webhook_lease(self, hook_id: str) -> str:
        """String ``t:{tid}:hook:<id>:lease``: the token of the worker delivering to it; expires."""
        return f"{self.prefix}hook:{hook_id}:lease"

    def webhook_rate(self, second: int | str) -> str:
        """String counter ``t:{tid}:hooks:rate:<second>``: delivery attempts in that second; expires."""
        return f"{self.prefix}hooks:rate:{second}"

    def object_feed(self) -> str:
        """Stream ``t:{tid}:ofeed``: object changes (op put|delete, bucket, name, ver, size, sha256,
        ctype, u), entry id ``<seq>-0``; written only while ``object_feed_on`` exists."""
        return f"{self.prefix}ofeed"

    def object_feed_on(self) -> str:
        """String ``t:{tid}:ofeed:on``: the feed's maximum length, present while a webhook of the tenant
        subscribes to object events."""
        return f"{self.prefix}ofeed:on"

    # Coordination: leases and locks (app/coord)
    def leases(self) -> str:
        """Sorted set ``t:{tid}:leases``: lease id, score its expiry (ms); expired ones are pruned
        when a lease is granted (the live count is bounded)."""
        return f"{self.prefix}leases"

    def lease(self, lease_id: str) -> str:
        """Hash ``t:{tid}:lease:<id>``: ttl (seconds), x (expiry ms), c (granted ms); Redis expires
        it at x."""
        return f"{self.prefix}lease:{lease_id}"

    def lease_keys(self, lease_id: str) -> str:
        """Set ``t:{tid}:lease_keys:<id>``: ``<bucket>/<key>`` of the keys attached to the lease (an
        entry is attached while its field ``lease`` names the lease); Redis expires it at the lease's x."""
        return f"{self.prefix}lease_keys:{lease_id}"

    def lock(self, name: str) -> str:
        """Hash ``t:{tid}:lock:<name>``: token (the last fencing token given, never reset), holder
        (lease id, absent when free), at (ms of the acquisition)."""
        return f"{self.prefix}lock:{name}"

    def lock_queue(self, name: str) -> str:
        """Sorted set ``t:{tid}:lockq:<name>``: waiting ticket, score its arrival number (FIFO)."""
        return f"{self.prefix}lockq:{name}"

    def lock_tickets(self, name: str) -> str:
        """Hash ``t:{tid}:lockt:<name>``: waiting ticket -> until when (ms) its waiter is alive."""
        return f"{self.prefix}lockt:{name}"

    def transfer(self, job_id: str) -> str:
        """Hash ``t:{tid}:xfer:<id>``: an export or import job (app/transfer/store.py)."""
        return f"{self.prefix}xfer:{job_id}"

    def transfers(self) -> str:
        """Sorted set ``t:{tid}:xfers``: the tenant's export and import job ids, score created (ms)."""
        return f"{self.prefix}xfers"

    def deleted_buckets(self) -> str:
        """Hash ``t:{tid}:dbuckets``: KV bucket name -> JSON of its last deletion (id, settings, when
        its feed expires), kept while the feed is: what POST .../restore replays."""
        return f"{self.prefix}dbuckets"


# -- the Lua key prelude, generated from KeySchema ----------------------------------------------
# Each Lua builder is the Python method rendered with placeholders for its parameters, so the two
# cannot disagree: ``tp`` is ``tenant_prefix(tid)``, ``pair`` is ``<tag>=<value>``.

_MARK = "\x00"


class _LuaSchema(KeySchema):
    """A KeySchema whose tenant prefix is the Lua variable ``tp``."""

    @property
    def prefix(self) -> str:
        return f"{_MARK}tp{_MARK}"


def _var(name: str) -> str:
    return f"{_MARK}{name}{_MARK}"


def _lua_concat(rendered: str) -> str:
    """``\0tp\0b:\0bid\0`` -> ``tp .. 'b:' .. bid``."""
    parts = rendered.split(_MARK)
    pieces = [repr(text) if position % 2 == 0 else text for position, text in enumerate(parts) if text]
    return " .. ".join(pieces)


_LUA_BUILDERS: list[tuple[str, str, tuple[str, ...]]] = [
    # (Lua function, KeySchema method, Lua parameters after tp)
    ("bucket_prefix", "bucket_prefix", ("bid",)),
    ("entry_key", "entry", ("bid", "key")),
    ("history_key", "history", ("bid", "key")),
    ("key_index_key", "key_index", ("bid",)),
    ("ttl_index_key", "ttl_index", ("bid",)),
    ("tag_index_key", "tag_index", ("bid", "pair")),
    ("tag_registry_key", "tag_registry", ("bid",)),
    ("deleted_keys_key", "deleted_keys", ("bid",)),
    ("feed_key", "feed", ("bid",)),
    ("deleted_history_bytes_key", "deleted_history_bytes", ("bid",)),
    ("history_buckets_key", "history_buckets", ()),
    ("dead_feeds_key", "dead_feeds", ()),
    ("held_scheduled_key", "held_scheduled", ()),
    ("version_slots_key", "version_floors_by_slot", ("bid",)),
    ("bucket_key", "bucket", ("name",)),
    ("buckets_key", "buckets", ()),
    ("usage_key", "usage", ()),
    ("limits_key", "limits", ()),
    ("seq_key", "sequences", ()),
    ("ttl_buckets_key", "ttl_buckets", ()),
    ("version_floors_key", "version_floors", ()),
    ("ttl_scheduled_key", "ttl_scheduled", ()),
    ("trash_key", "trash", ()),
    ("obuckets_key", "object_buckets", ()),
    ("obucket_key", "object_bucket", ("name",)),
    ("object_meta_key", "object_meta", ("bid", "name")),
    ("object_index_key", "object_index", ("bid",)),
    ("upload_key", "upload", ("id",)),
    ("chunk_key", "chunk", ("id", "index")),
    ("garbage_key", "garbage", ()),
    ("object_compactions_key", "object_compactions", ()),
    ("object_trash_key", "object_trash", ()),
    ("audit_key", "audit", ()),
    ("audit_ids_key", "audit_ids", ()),
    ("audit_outbox_key", "audit_outbox", ()),
    ("webhooks_key", "webhooks", ()),
    ("webhook_cursors_key", "webhook_cursors", ("id",)),
    ("webhook_queue_key", "webhook_queue", ("id",)),
    ("webhook_deliveries_key", "webhook_deliveries", ("id",)),
    ("webhook_log_key", "webhook_log", ("id",)),
    ("webhook_lease_key", "webhook_lease", ("id",)),
    ("webhook_rate_key", "webhook_rate", ("index",)),
    ("object_feed_key", "object_feed", ()),
    ("object_feed_on_key", "object_feed_on", ()),
    ("leases_key", "leases", ()),
    ("lease_key", "lease", ("id",)),
    ("lease_keys_key", "lease_keys", ("id",)),
    ("lock_key", "lock", ("name",)),
    ("lock_queue_key", "lock_queue", ("name",)),
    ("lock_tickets_key", "lock_tickets", ("name",)),
    ("search_posting_key", "search_posting", ("bid", "term")),
    ("search_terms_key", "search_terms", ("bid",)),
    ("search_buckets_key", "search_buckets", ()),
    ("deleted_buckets_key", "deleted_buckets", ()),
]


def _render_builder(lua_name: str, method: str, params: tuple[str, ...]) -> str:
    schema = _LuaSchema("")
    if method == "tag_index":  # Python takes tag and value; Lua the joined ``<tag>=<value>`` pair
        rendered = schema.tag_index(_var("bid"), _MARK + "pair", _MARK)
        rendered = rendered.replace(f"{_MARK}pair={_MARK}", _var("pair"))
    else:
        rendered = getattr(schema, method)(*(_var(name) for name in params))
    signature = ", ".join(("tp", *params))
    return f"local function {lua_name}({signature}) return {_lua_concat(rendered)} end"


LUA_PRELUDE = "\n" + "\n".join(_render_builder(*builder) for builder in _LUA_BUILDERS) + "\n"
"""The key builders every Lua script starts with, rendered from :class:`KeySchema`."""
