-- include: _search_lib
-- Shared by the kv_* scripts (included by app/platform/scripts.py after the key prelude).
-- Every write script takes the same ARGV header (H entries; script arguments follow at ARGV[H + 1]):
--   ARGV[1] tenant prefix  ARGV[2] bucket name  ARGV[3] default history depth
--   ARGV[4] feed max length  ARGV[5] largest value copied into the feed
--   ARGV[6] how long (ms) the history of a deleted key is kept
--   ARGV[7] default quota of keys  ARGV[8] default quota of KV bytes (0 = unlimited)
--   ARGV[9] DEFAULT_TTL (seconds; 0 = none): the TTL of new keys of the default bucket written without one
-- Entry fields: v enc ver rev c u x tags hb hh lease (see KeySchema.entry).
--
-- What a tenant keeps counts against its max_kv_bytes (usage fields, kept exact by these scripts):
--   kv_bytes          key names + stored values
--   kv_history_bytes  history records other than a live key's current revision: past revisions of
--                     live keys, every record of a deleted key until its history expires. A write
--                     keeps a key's past revisions as far as they fit (kv_bytes + kv_history_bytes <=
--                     max_kv_bytes): the key's own oldest revisions go first, never another key's.
--   kv_feed_bytes     the change feeds (field names + values of every event), trimmed oldest first to
--                     stay within max_kv_bytes; an event whose value cannot fit goes without it.
-- A bucket with search on (_search_lib.lua) adds its index bytes to kv_bytes and its bytes.

local H = 9

local ENTRY_FIELDS = {'v', 'enc', 'ver', 'rev', 'c', 'u', 'x', 'tags'}
local WRITE_FIELDS = {'v', 'enc', 'ver', 'rev', 'c', 'u', 'x', 'tags', 'hb', 'hh', 'lease'}  -- read_entry: cur[1..11]

local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function read_config()
  return {
    tp = ARGV[1], bucket = ARGV[2], default_history = tonumber(ARGV[3]),
    feed_maxlen = tonumber(ARGV[4]), feed_value_max = tonumber(ARGV[5]),
    deleted_history_ms = tonumber(ARGV[6]),
    max_keys = tonumber(ARGV[7]), max_kv_bytes = tonumber(ARGV[8]), default_ttl = tonumber(ARGV[9]),
  }
end

-- The tenant's quota: its override in the limits hash, else the default (0 = unlimited).
local function quota(tp, name, default)
  local override = redis.call('HGET', limits_key(tp), name)
  if override then return tonumber(override) end
  return default
end

-- The tenant's max_kv_bytes (0 = unlimited), read once per script.
local function kv_limit(cfg)
  if not cfg.kv_limit then cfg.kv_limit = quota(cfg.tp, 'max_kv_bytes', cfg.max_kv_bytes) end
  return cfg.kv_limit
end

-- What counts against max_kv_bytes now: values and past history.
local function kv_used(cfg)
  local usage = redis.call('HMGET', usage_key(cfg.tp), 'kv_bytes', 'kv_history_bytes')
  return (tonumber(usage[1]) or 0) + (tonumber(usage[2]) or 0)
end

-- Starts the history budget of a script: the bytes its writes may still add to past history once
-- `reserved` value bytes (checked already) are written. nil = unlimited. Called right after
-- check_kv_quota, it takes the usage that one read (nothing was written in between).
local function begin_room(cfg, reserved)
  local limit = kv_limit(cfg)
  local used = cfg.checked_used
  cfg.checked_used = nil
  if limit > 0 then cfg.room = limit - (used or kv_used(cfg)) - reserved else cfg.room = nil end
end

-- {'E', 'quota_exceeded', '<quota> <limit> <usage>'} when adding `new_keys` keys and `new_bytes`
-- value bytes would pass the tenant's quota, else nil. Shrinking writes always pass, and the usage
-- is read only when something grows under a quota (a rewrite of the same size reads nothing).
local function check_kv_quota(cfg, new_keys, new_bytes)
  local key_limit, byte_limit = 0, 0
  if new_keys > 0 then key_limit = quota(cfg.tp, 'max_keys', cfg.max_keys) end
  if new_bytes > 0 then byte_limit = kv_limit(cfg) end
  if key_limit == 0 and byte_limit == 0 then return nil end
  local usage = redis.call('HMGET', usage_key(cfg.tp), 'keys', 'kv_bytes', 'kv_history_bytes')
  if key_limit > 0 then
    local used = tonumber(usage[1]) or 0
    if used + new_keys > key_limit then
      return {'E', 'quota_exceeded', 'max_keys ' .. key_limit .. ' ' .. used}
    end
  end
  local used = (tonumber(usage[2]) or 0) + (tonumber(usage[3]) or 0)
  if byte_limit > 0 and used + new_bytes > byte_limit then
    return {'E', 'quota_exceeded', 'max_kv_bytes ' .. byte_limit .. ' ' .. used}
  end
  cfg.checked_used = used
  return nil
end

-- The bucket's settings, or nil when it does not exist. The bucket `default` springs into
-- existence on its first write when `create_default` is true.
-- The default bucket's TTL for new keys is DEFAULT_TTL (default_ttl) unless it has one of its own.
local function load_bucket(tp, name, create_default, default_history, default_ttl)
  local bkey = bucket_key(tp, name)
  local meta = redis.call('HMGET', bkey, 'id', 'history', 'ttl', 'max_value_size', 'vfloor', 'vmax', 'search', 'fb')
  local ttl = tonumber(meta[3]) or 0
  if ttl == 0 and name == 'default' then ttl = default_ttl or 0 end
  if meta[1] then
    return {name = name, bkey = bkey, id = meta[1], history = tonumber(meta[2]),
            ttl = ttl, maxv = tonumber(meta[4]) or 0,
            vfloor = tonumber(meta[5]) or 0, vmax = tonumber(meta[6]) or 0,
            search = meta[7] == '1' or meta[7] == 'b', sdrop = meta[7] == 'd', fb = tonumber(meta[8]) or 0}
  end
  if name ~= 'default' or not create_default then return nil end
  local id = redis.call('HINCRBY', seq_key(tp), 'bucket', 1)
  local vfloor = tonumber(redis.call('HGET', version_floors_key(tp), name)) or 0
  redis.call('HSET', bkey, 'id', id, 'rev', 0, 'keys', 0, 'bytes', 0, 'history', default_history,
             'ttl', 0, 'max_value_size', 0, 'description', 'The default bucket', 'created_at', server_ms(),
             'vfloor', vfloor, 'vmax', vfloor)
  redis.call('ZADD', buckets_key(tp), 0, name)
  return {name = name, bkey = bkey, id = tostring(id), history = default_history, ttl = ttl, maxv = 0,
          vfloor = vfloor, vmax = vfloor, fb = 0}
end

-- A bucket is deleted: remember the highest version it gave out, so that keys of a bucket created
-- again under its name never reuse a version (an old ETag cannot match them).
local function retire_versions(tp, b)
  local top = math.max(b.vfloor, b.vmax)
  -- A bucket written before `vmax` was kept: its revision bounds every version (one put, one step).
  if not redis.call('HGET', b.bkey, 'vmax') then top = math.max(top, tonumber(redis.call('HGET', b.bkey, 'rev'))) end
  if top > 0 then redis.call('HSET', version_floors_key(tp), b.name, top) end
end

local function read_entry(tp, b, key)
  local cur = redis.call('HMGET', entry_key(tp, b.id, key), unpack(WRITE_FIELDS))
  if not cur[3] then return nil end
  return cur
end

-- Whether an entry at version `ver` and revision `rev` (0, 0: absent) meets `expected`: the
-- versions a compare-and-swap accepts joined by ',', or 'r<N>' for revision N (NATS' expected revision).
local function precondition_matches(expected, ver, rev)
  if string.sub(expected, 1, 1) == 'r' then return tonumber(string.sub(expected, 2)) == tonumber(rev) end
  for v in string.gmatch(expected, '%d+') do
    if tonumber(v) == tonumber(ver) then return true end
  end
  return false
end

local function is_expired(cur, now)
  return cur[7] and tonumber(cur[7]) <= now
end

local function tag_pairs(tags_json)
  local out = {}
  if tags_json and tags_json ~= '' and tags_json ~= '{}' then
    for k, v in pairs(cjson.decode(tags_json)) do out[#out + 1] = k .. '=' .. v end
  end
  return out
end

local function index_tags(tp, b, key, tags_json, add)
  for _, pair in ipairs(tag_pairs(tags_json)) do
    local tk = tag_index_key(tp, b.id, pair)
    if add then
      redis.call('ZADD', tk, 0, key)
      redis.call('SADD', tag_registry_key(tp, b.id), tk)
    else
      redis.call('ZREM', tk, key)
    end
  end
end

local function account(tp, b, keys_delta, bytes_delta)
  local usage = usage_key(tp)
  if keys_delta ~= 0 then
    redis.call('HINCRBY', b.bkey, 'keys', keys_delta)
    redis.call('HINCRBY', usage, 'keys', keys_delta)
  end
  if bytes_delta ~= 0 then
    redis.call('HINCRBY', b.bkey, 'bytes', bytes_delta)
    redis.call('HINCRBY', usage, 'kv_bytes', bytes_delta)
  end
end

local function account_history(tp, b, delta)
  if delta ~= 0 then
    redis.call('HINCRBY', b.bkey, 'hbytes', delta)
    redis.call('HINCRBY', usage_key(tp), 'kv_history_bytes', delta)
  end
end

-- The bytes of a key's history that count (kv_history_bytes): a live entry's list but its current
-- record; 0 for an entry written before history bytes were kept (its records were never counted).
local function past_bytes(cur)
  local hb = tonumber(cur[9])
  if not hb then return 0 end
  return hb - (tonumber(cur[10]) or 0)
end

-- Deleted keys whose history is still kept: the worker releases their bytes when it expires
-- (kv_release_held.lua). Returns the time to put in the global held schedule when the tenant's
-- earliest release moved earlier (the caller's store does it), else nil.
local function schedule_held(tp, at)
  local scheduled = redis.call('GET', held_scheduled_key(tp))
  if not scheduled or tonumber(scheduled) > at then
    redis.call('SET', held_scheduled_key(tp), at)
    return at
  end
  return nil
end

-- Keep ``member`` in the sorted set ``schedule`` at the earliest score of ``index`` (a bucket's TTL
-- index or deleted-key list), or out of it when the index is empty.
local function schedule_by_first(schedule, index, member)
  local first = redis.call('ZRANGE', index, 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', schedule, first[2], member)
  else
    redis.call('ZREM', schedule, member)
  end
end

local function json_or_null(s)
  if s == nil or s == false or s == '' then return 'null' end
  return s
end

-- History records are JSON objects that always start with {"version":N, (last_version reads it).
local function history_record(ver, rev, op, value, enc, tags, now, x)
  local encoding = 'null'
  if enc and enc ~= '' then encoding = '"' .. enc .. '"' end
  return '{"version":' .. ver .. ',"revision":' .. rev .. ',"operation":"' .. op .. '","value":' ..
    json_or_null(value) .. ',"encoding":' .. encoding .. ',"tags":' .. json_or_null(tags) ..
    ',"updated_at":' .. now .. ',"expires_at":' .. json_or_null(x and tostring(x)) .. '}'
end

-- Pushes `record` onto a key's history (newest first) and trims it to the bucket's depth. `known`
-- is what the list counted so far (its records, as kept in hb; 0 when never counted). With a
-- history budget `room` (bytes the key's other records may take; nil = unlimited), the key's own
-- oldest records go until the rest fits, never the new one. Returns the bytes of the records kept
-- besides the new one.
local function history_push(tp, b, key, record, known, room)
  local hk = history_key(tp, b.id, key)
  local len = redis.call('LPUSH', hk, record)
  local rest = known
  if len > b.history then  -- the records past the depth go (RPOP with a count: Redis 6.2)
    for _, old in ipairs(redis.call('RPOP', hk, len - b.history)) do rest = rest - #old end
  end
  if rest < 0 then rest = 0 end  -- records written before history bytes were kept
  if room then
    while rest > room and redis.call('LLEN', hk) > 1 do
      rest = rest - #redis.call('RPOP', hk)
      if rest < 0 then rest = 0 end
    end
  end
  return rest
end

-- A key's version slot: deletions raise their slot's floor, a bounded stand-in for the key's own
-- last version once its history has expired.
local function version_slot(key)
  local h = 5381
  for i = 1, #key do h = (h * 33 + string.byte(key, i)) % 4096 end  -- djb2, kept exact in a double
  return h
end

-- The version a new incarnation of `key` continues from, so an old ETag can never match it: the
-- last one its history kept; never below its slot's floor, which every deletion or expiry raises
-- to the version removed (the history of a deleted key expires, the floor stays); never below
-- the bucket's floor, inherited from a deleted bucket of the same name.
local function last_version(tp, b, key)
  local head = redis.call('LINDEX', history_key(tp, b.id, key), 0)
  if head then return math.max(tonumber(string.match(head, '^{"version":(%d+)')) or 0, b.vfloor) end
  local slot = tonumber(redis.call('HGET', version_slots_key(tp, b.id), version_slot(key))) or 0
  return math.max(slot, b.vfloor)
end

-- Appends an event to the bucket's change feed: at most feed_maxlen events, and the tenant's feeds
-- together within max_kv_bytes (kv_feed_bytes: field names + values): the bucket's oldest events
-- go first. `value`, when given, is copied into the event if it is small enough and can fit once
-- the bucket's own feed is trimmed; otherwise the event goes without it (watchers read the key).
local function feed_append(cfg, b, rev, fields, value)
  local tp, fk = cfg.tp, feed_key(cfg.tp, b.id)
  local size = 0
  for i = 1, #fields do
    fields[i] = tostring(fields[i])
    size = size + #fields[i]
  end
  local limit = kv_limit(cfg)
  local fb = b.fb  -- read by load_bucket, kept current below
  local used = 0  -- the tenant's feed bytes, needed only under a quota
  if limit > 0 then used = tonumber(redis.call('HGET', usage_key(tp), 'kv_feed_bytes')) or 0 end
  if value and #value <= cfg.feed_value_max and (limit == 0 or size + 1 + #value <= limit - (used - fb)) then
    fields[#fields + 1] = 'v'; fields[#fields + 1] = value
    size = size + 1 + #value
  end
  local len = redis.call('XLEN', fk)
  -- The length cap is kept in steps: once the feed holds cap + cap/64 events, the oldest go until
  -- cap - 1 are left (this one makes cap). One trim every cap/64 writes, not one per write (a
  -- trim reads what it drops, to count its bytes); the feed always keeps at least the last cap.
  local cap = cfg.feed_maxlen
  if len < cap + math.floor(cap / 64) then cap = len + 1 end  -- no trim for length this time
  -- Reads the oldest events in one go for the length, or one, then 2, 4 ... for the byte quota.
  local freed, dropped, last, from = 0, 0, nil, '-'
  local count = math.max(1, math.min(len - cap + 1, 256))
  while len - dropped > 0 and (len - dropped >= cap or (limit > 0 and used - freed + size > limit)) do
    local batch = redis.call('XRANGE', fk, from, '+', 'COUNT', count)
    count = math.min(count * 2, 256)
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      if not (len - dropped >= cap or (limit > 0 and used - freed + size > limit)) then break end
      for _, part in ipairs(entry[2]) do freed = freed + #part end
      dropped, last = dropped + 1, entry[1]
    end
    from = '(' .. last
  end
  if last then
    local top = tonumber(string.match(last, '^(%d+)'))
    redis.call('XTRIM', fk, 'MINID', (top + 1) .. '-0')
  end
  freed = math.min(freed, fb)  -- events written before feed bytes were kept were never counted
  redis.call('XADD', fk, rev .. '-0', unpack(fields))
  local delta = size - freed
  if delta ~= 0 then
    b.fb = redis.call('HINCRBY', b.bkey, 'fb', delta)
    redis.call('HINCRBY', usage_key(tp), 'kv_feed_bytes', delta)
  end
end

-- Removes an entry from every index (op = 'delete' or 'expire'); returns {revision, version}.
-- Its value bytes are released; its history (now all past, with the deletion's record) counts in
-- kv_history_bytes until it expires, as far as it fits (cfg.room, see begin_room). A deletion is
-- never refused: its own record (~100 bytes) counts even when nothing else of the key fits.
local function remove_entry(cfg, b, key, cur, op, now)
  local tp = cfg.tp
  local sfreed = 0
  if b.search or b.sdrop then sfreed = search_unindex(tp, b, key) end
  index_tags(tp, b, key, cur[8], false)
  redis.call('DEL', entry_key(tp, b.id, key))
  redis.call('ZREM', key_index_key(tp, b.id), key)
  if cur[7] then redis.call('ZREM', ttl_index_key(tp, b.id), key) end
  local released = #key + #cur[1] + sfreed
  account(tp, b, -1, -released)
  local rev = redis.call('HINCRBY', b.bkey, 'rev', 1)
  local ver = tonumber(cur[3])
  local slots, slot = version_slots_key(tp, b.id), version_slot(key)
  if ver > (tonumber(redis.call('HGET', slots, slot)) or 0) then redis.call('HSET', slots, slot, ver) end
  local record = history_record(ver, rev, op, nil, nil, nil, now, nil)
  local before = past_bytes(cur)
  local room = nil
  if cfg.room then room = cfg.room + before + released - #record end
  local rest = history_push(tp, b, key, record, tonumber(cur[9]) or 0, room)
  local hk = history_key(tp, b.id, key)
  redis.call('PEXPIRE', hk, cfg.deleted_history_ms)
  local kept = rest + #record
  redis.call('HSET', deleted_history_bytes_key(tp, b.id), key, kept)
  account_history(tp, b, kept - before)
  if cfg.room then cfg.room = cfg.room + released - (kept - before) end
  -- The history outlives the key: note it for its release (the worker) and for a bucket purge.
  local expires = now + cfg.deleted_history_ms
  redis.call('ZADD', deleted_keys_key(tp, b.id), expires, key)
  redis.call('ZADD', history_buckets_key(tp), 'LT', expires, b.name)
  cfg.held_at = schedule_held(tp, expires) or cfg.held_at
  feed_append(cfg, b, rev, {'op', op, 'key', key, 'ver', ver, 'u', now})
  if op == 'expire' then
    -- Audited in this same atomic step, whoever removes the key (the sweep, or a write that met it
    -- expired): exactly one event per expiry. The tenant is due in the global TTL schedule since
    -- the key's expiry (it moves only when a sweep has run), so its next sweep moves the outbox
    -- into the audit stream.
    redis.call('RPUSH', audit_outbox_key(tp), cjson.encode({
      eid = 'expire:' .. b.id .. ':' .. rev, ts = tostring(now), action = 'kv.expire',
      bucket = b.name, key = key, outcome = 'success', status = '0'}))
  end
  return {rev, ver}
end

-- Registers an expiry in the bucket's and the tenant's TTL indexes. Returns 1 when the
-- tenant's earliest expiry moved earlier: the caller then updates the global schedule.
local function index_expiry(tp, b, key, x)
  redis.call('ZADD', ttl_index_key(tp, b.id), x, key)
  redis.call('ZADD', ttl_buckets_key(tp), 'LT', x, b.name)
  local scheduled = redis.call('GET', ttl_scheduled_key(tp))
  if not scheduled or tonumber(scheduled) > x then
    redis.call('SET', ttl_scheduled_key(tp), x)
    return 1
  end
  return 0
end

-- Creates or updates one entry.
--   mode: 'create' (key_exists when present), 'put' (upsert), 'update' (key_not_found when absent)
--   expected: '' or the versions the entry may have (joined by ','); if_none_match: '1' = must not exist
--   ttl_ms: '' keeps the expiry (new keys get the bucket default), '0' removes it, N sets it
--   tags_json: '' keeps the tags (new keys get none), else a JSON object of strings
-- Returns {'OK', version, revision, created_ms, updated_ms, expires_ms|'', created 1|0, schedule 1|0, tags}
-- or {'E', code, detail}.
local function put_entry(cfg, b, key, value, enc, ttl_ms, tags_json, mode, expected, if_none_match, now)
  local tp = cfg.tp
  local cur = read_entry(tp, b, key)
  if cur and is_expired(cur, now) then
    if not cfg.skip_quota then begin_room(cfg, 0) end
    remove_entry(cfg, b, key, cur, 'expire', now)
    cur = nil
  end
  if cur then
    if mode == 'create' then return {'E', 'key_exists', ''} end
    if if_none_match == '1' then return {'E', 'precondition_failed', 'exists'} end
    if expected ~= '' and not precondition_matches(expected, cur[3], cur[4]) then
      return {'E', 'version_conflict', cur[3] .. ',' .. cur[4]}
    end
  else
    if mode == 'update' then return {'E', 'key_not_found', ''} end
    -- Version 0 is "no such key" (as in etcd): expecting it is a create-only write.
    if expected ~= '' and not precondition_matches(expected, 0, 0) then return {'E', 'version_conflict', '0,0'} end
  end
  if b.maxv > 0 and #value > b.maxv then return {'E', 'value_too_large', tostring(b.maxv)} end
  local added
  if cur then added = #value - #cur[1] else added = #key + #value end
  local sp, sdelta = nil, 0
  if b.search then
    local stags = tags_json
    if stags == '' then stags = (cur and cur[8]) or '{}' end
    sp = search_prepare(tp, b, key, value, enc, stags, cur ~= nil)
    sdelta = sp.delta
    added = added + sdelta
  end
  if not cfg.skip_quota then
    local over
    if cur then over = check_kv_quota(cfg, 0, added)
    else over = check_kv_quota(cfg, 1, added) end
    if over then return over end
    begin_room(cfg, added)
  end

  local x = nil
  if ttl_ms == '' then
    if cur and cur[7] then x = tonumber(cur[7]) elseif not cur and b.ttl > 0 then x = now + b.ttl * 1000 end
  elseif ttl_ms ~= '0' then
    x = now + tonumber(ttl_ms)
  end
  local tags = tags_json
  if tags == '' then tags = (cur and cur[8]) or '{}' end
  if b.sdrop and cur then  -- search being turned off: the key leaves the index now
    sdelta = 0 - search_unindex(tp, b, key)
    redis.call('HDEL', entry_key(tp, b.id, key), 's')
  end
  local ver, created
  if cur then
    ver, created = tonumber(cur[3]) + 1, tonumber(cur[5])
    if tags ~= cur[8] then index_tags(tp, b, key, cur[8], false) end
    account(tp, b, 0, #value - #cur[1] + sdelta)
  else
    ver, created = last_version(tp, b, key) + 1, now
    redis.call('ZADD', key_index_key(tp, b.id), 0, key)
    account(tp, b, 1, #key + #value + sdelta)
  end
  if not cur or tags ~= cur[8] then index_tags(tp, b, key, tags, true) end

  local rev = redis.call('HINCRBY', b.bkey, 'rev', 1)
  if ver > b.vmax then
    b.vmax = ver
    redis.call('HSET', b.bkey, 'vmax', ver)
  end
  local ek = entry_key(tp, b.id, key)
  local schedule = 0
  if x then
    schedule = index_expiry(tp, b, key, x)
  elseif cur and cur[7] then
    redis.call('HDEL', ek, 'x')
    redis.call('ZREM', ttl_index_key(tp, b.id), key)
  end
  -- History: the record of this revision, and the key's past as far as it fits (begin_room).
  local hk = history_key(tp, b.id, key)
  local before, known = 0, 0
  if cur then
    before, known = past_bytes(cur), tonumber(cur[9]) or 0
  else
    local gone_bytes = deleted_history_bytes_key(tp, b.id)
    before = tonumber(redis.call('HGET', gone_bytes, key)) or 0  -- a deleted key's history, still counted
    if before > 0 then redis.call('HDEL', gone_bytes, key) end
    if redis.call('EXISTS', hk) == 1 then known = before end  -- else it expired: nothing of it is left
  end
  local record = history_record(ver, rev, 'put', value, enc, tags, now, x)
  local room = nil
  if cfg.room then room = cfg.room + before end
  local rest = history_push(tp, b, key, record, known, room)
  if not cur then
    -- Live again: its history is no longer a deleted key's (whether or not it had expired yet).
    redis.call('PERSIST', hk)
    redis.call('ZREM', deleted_keys_key(tp, b.id), key)
  end
  -- The entry in one HSET (its fields, its history's bytes, its expiry): one command, not three.
  local fields = {'v', value, 'enc', enc, 'ver', ver, 'rev', rev, 'c', created, 'u', now, 'tags', tags,
                  'hb', rest + #record, 'hh', #record}
  if x then fields[#fields + 1] = 'x'; fields[#fields + 1] = x end
  if sp then
    fields[#fields + 1] = 's'; fields[#fields + 1] = sp.s
    search_apply(tp, b, key, sp)
  end
  redis.call('HSET', ek, unpack(fields))
  account_history(tp, b, rest - before)
  if cfg.room then cfg.room = cfg.room - (rest - before) end
  local event = {'op', 'put', 'key', key, 'ver', ver, 'enc', enc, 'tags', tags, 'x', x or '', 'u', now}
  feed_append(cfg, b, rev, event, value)
  return {'OK', ver, rev, created, now, x or '', cur and 0 or 1, schedule, tags}
end

-- Deletes one entry; expected '' or the versions it may have (joined by ',').
-- Returns {'OK', revision, version} or {'E', code, detail}.
local function delete_entry(cfg, b, key, expected, now)
  begin_room(cfg, 0)
  local cur = read_entry(cfg.tp, b, key)
  if cur and is_expired(cur, now) then
    remove_entry(cfg, b, key, cur, 'expire', now)
    cur = nil
  end
  if not cur then return {'E', 'key_not_found', ''} end
  if expected ~= '' and not precondition_matches(expected, cur[3], cur[4]) then
    return {'E', 'version_conflict', cur[3] .. ',' .. cur[4]}
  end
  local res = remove_entry(cfg, b, key, cur, 'delete', now)
  return {'OK', res[1], res[2]}
end

-- Purges up to `batch` items of deleted bucket incarnation `bid`: keys (entry, history, index
-- entries), then the histories of its deleted keys, then its tag indexes and search posting
-- lists; the TTL index goes last. Returns how many items are left (0 = done).
local function purge_bucket_keys(tp, bid, batch)
  local idx, gone, registry = key_index_key(tp, bid), deleted_keys_key(tp, bid), tag_registry_key(tp, bid)
  local b = {id = bid}
  local ks = redis.call('ZRANGE', idx, 0, batch - 1)
  for _, k in ipairs(ks) do
    local ek = entry_key(tp, bid, k)
    index_tags(tp, b, k, redis.call('HGET', ek, 'tags'), false)  -- keeps each tag index small to drop
    redis.call('DEL', ek, history_key(tp, bid, k))
  end
  if #ks > 0 then
    redis.call('ZREM', idx, unpack(ks))
    redis.call('ZREM', ttl_index_key(tp, bid), unpack(ks))
  end
  local budget = batch - #ks
  if budget > 0 then
    local ds = redis.call('ZRANGE', gone, 0, budget - 1)
    for _, k in ipairs(ds) do redis.call('DEL', history_key(tp, bid, k)) end
    if #ds > 0 then redis.call('ZREM', gone, unpack(ds)) end
    budget = budget - #ds
  end
  if budget > 0 and redis.call('ZCARD', idx) == 0 then
    for _, tk in ipairs(redis.call('SPOP', registry, budget)) do redis.call('DEL', tk) end
  end
  local sleft = 0
  if redis.call('ZCARD', idx) == 0 then sleft = search_purge_terms(tp, bid, budget) end  -- posting lists last
  local left = redis.call('ZCARD', idx) + redis.call('ZCARD', gone) + redis.call('SCARD', registry) + sleft
  if left == 0 then
    redis.call('DEL', ttl_index_key(tp, bid), version_slots_key(tp, bid), deleted_history_bytes_key(tp, bid))
  end
  return left
end
