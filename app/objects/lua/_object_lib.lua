-- Shared by the object_* scripts (included by app/platform/scripts.py after the key prelude).
-- Content lives in chunks ch:<upload id>:<i> of chunk_size bytes. An object's meta hash names
-- its content as segments "<upload id>:<size>:<chunks>" joined by ','. Every upload id that is
-- not referenced by an object has an up:<id> hash (state, chunks) and a garbage entry whose
-- score says when the worker may delete its chunks: the idle deadline of a pending upload, or
-- now + grace for a replaced version so that its readers can finish.
-- Accounting (the tenant's usage hash, all missing fields read as 0): object_bytes = current
-- versions; object_pending_bytes = bytes written to uploads in progress (a PUT's upload, a part
-- being written, the parts of an open multipart upload: its 'pbytes'); object_garbage_bytes =
-- bytes handed to the collector and not deleted yet (an up:<id> hash's 'gbytes'). A pending
-- upload's 'bytes' are what it counts in object_pending_bytes; its 'credit' the size of the
-- object a PUT replaces (that much of the quota it may use besides the free part).
-- Every script answers {'OK', ...} or, refusing, {'E', code, detail} (app/objects/store.py decodes both).

local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function err(code, detail) return {'E', code, detail or ''} end

local function now_or(arg)
  local n = tonumber(arg)
  if n then return n end
  return server_ms()
end

-- Bucket of a tenant by name: {key, id, chunk_size, max} or nil.
local function load_obucket(tp, name)
  local key = obucket_key(tp, name)
  local f = redis.call('HMGET', key, 'id', 'chunk_size', 'max_object_size')
  if not f[1] then return nil end
  return {key = key, name = name, id = f[1], chunk_size = tonumber(f[2]), max = tonumber(f[3]) or 0}
end

-- Iterate the segments of a "id:size:chunks,..." string.
local function each_segment(segs)
  return string.gmatch(segs or '', '([^:,]+):(%d+):(%d+)')
end

-- Register an upload id as pending: the worker collects it after `deadline` unless it commits.
-- `credit`: see the accounting note above (0 for parts and compaction copies).
local function stage_pending(tp, id, kind, deadline, credit)
  redis.call('HSET', upload_key(tp, id), 'kind', kind, 'state', 'pending', 'chunks', 0, 'bytes', 0,
             'credit', credit or 0)
  redis.call('ZADD', garbage_key(tp), deadline, id)
end

-- (A delta of 0 is skipped: Lua's -0 would reach HINCRBY as "-0", which it refuses.)
local function count_pending(tp, delta)
  if delta ~= 0 then redis.call('HINCRBY', usage_key(tp), 'object_pending_bytes', delta) end
end

local function count_garbage(tp, delta)
  if delta ~= 0 then redis.call('HINCRBY', usage_key(tp), 'object_garbage_bytes', delta) end
end

-- The id is no longer garbage-to-be: its chunks now belong to an object (or a multipart part).
-- Its bytes leave object_pending_bytes; returns them (the caller counts them where they go).
local function adopt_pending(tp, id)
  local ukey = upload_key(tp, id)
  local bytes = tonumber(redis.call('HGET', ukey, 'bytes')) or 0
  count_pending(tp, -bytes)
  redis.call('DEL', ukey)
  redis.call('ZREM', garbage_key(tp), id)
  return bytes
end

local function is_pending(tp, id)
  return redis.call('HGET', upload_key(tp, id), 'state') == 'pending'
end

-- Hand an id's chunks to the garbage collector, due at `due` (ms). `bytes` of them count in
-- object_garbage_bytes until the collector deletes them (added now unless `counted` already).
local function discard_id(tp, id, chunks, due, bytes, counted)
  redis.call('HSET', upload_key(tp, id), 'kind', 'garbage', 'state', 'garbage', 'chunks', chunks, 'gbytes', bytes)
  if not counted then count_garbage(tp, bytes) end
  redis.call('ZADD', garbage_key(tp), due, id)
end

local function discard_segments(tp, segs, due, counted)
  for id, size, chunks in each_segment(segs) do discard_id(tp, id, chunks, due, tonumber(size), counted) end
end

-- `list` is '' (no condition), '*' or etags joined by ','.
local function etag_listed(list, sha)
  if list == '*' then return true end
  for tag in string.gmatch(list, '[^,]+') do
    if tag == sha then return true end
  end
  return false
end

-- If-Match / If-None-Match against the current SHA-256 (nil when there is no object).
local function conditions_hold(sha, if_match, if_none_match)
  if if_match ~= '' and (not sha or not etag_listed(if_match, sha)) then return false end
  if if_none_match ~= '' and sha and etag_listed(if_none_match, sha) then return false end
  return true
end

local function account(tp, bkey, objects_delta, bytes_delta)
  local usage = usage_key(tp)
  if objects_delta ~= 0 then
    redis.call('HINCRBY', bkey, 'objects', objects_delta)
    redis.call('HINCRBY', usage, 'objects', objects_delta)
  end
  if bytes_delta ~= 0 then
    redis.call('HINCRBY', bkey, 'bytes', bytes_delta)
    redis.call('HINCRBY', usage, 'object_bytes', bytes_delta)
  end
end

-- The tenant's object bytes quota: its override in the limits hash, else `default` (0 = unlimited).
local function object_quota(tp, default)
  return tonumber(redis.call('HGET', limits_key(tp), 'max_object_bytes') or default) or 0
end

-- {'E', 'quota_exceeded', 'max_object_bytes <limit> <usage>'} when adding `growth` bytes to the
-- current versions would pass the quota, else nil. A version no bigger than the one it replaces
-- always passes.
local function check_object_quota(tp, growth, default)
  if growth <= 0 then return nil end
  local limit = object_quota(tp, default)
  if limit <= 0 then return nil end
  local used = redis.call('HGET', usage_key(tp), 'object_bytes') or '0'
  if tonumber(used) + growth > limit then
    return err('quota_exceeded', 'max_object_bytes ' .. limit .. ' ' .. used)
  end
  return nil
end

local FOOTPRINT_FACTOR = 3

-- Before `n` more bytes of an upload in progress are stored: current versions + uploads in
-- progress may not pass the quota (plus `credit`, the size of the object a PUT replaces), and
-- everything the tenant holds (those + garbage awaiting collection) may not pass
-- FOOTPRINT_FACTOR x the quota. Returns the refusal or nil.
local function check_write_quota(tp, n, credit, default)
  if n <= 0 then return nil end
  local limit = object_quota(tp, default)
  if limit <= 0 then return nil end
  local f = redis.call('HMGET', usage_key(tp), 'object_bytes', 'object_pending_bytes', 'object_garbage_bytes')
  local used, pending, garbage = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
  if used + pending + n > limit + credit then
    return err('quota_exceeded', 'max_object_bytes ' .. limit .. ' ' .. (used + pending))
  end
  local held = used + pending + garbage
  if held + n > FOOTPRINT_FACTOR * limit then
    return err('quota_exceeded', 'max_object_footprint_bytes ' .. FOOTPRINT_FACTOR * limit .. ' ' .. held)
  end
  return nil
end

-- Make `v` (segs, size, sha256, chunks, chunk_size, ctype, desc, meta) the current version of
-- object `name`, atomically. The replaced version's chunks become garbage after the grace period.
-- `quota` is the default object bytes quota (see check_object_quota).
-- Returns {'OK', created 1|0, version, created ms, updated ms, garbage due ms} or an error.
-- The checks of install_version: {cur fields} when a version of `size` bytes may replace the
-- current one of `name`, or {nil, refusal}.
local function check_install(tp, b, name, size, if_match, if_none_match, quota)
  local cur = redis.call('HMGET', object_meta_key(tp, b.id, name), 'segs', 'size', 'sha256', 'ver', 'c')
  local exists = cur[2] ~= false
  if not conditions_hold(exists and cur[3] or nil, if_match, if_none_match) then
    return nil, err('precondition_failed', 'The object does not match If-Match / If-None-Match')
  end
  local over = check_object_quota(tp, size - (exists and tonumber(cur[2]) or 0), quota)
  if over then return nil, over end
  return cur
end

-- Webhooks (app/webhooks/): an object change goes into the tenant's object feed, only while one of
-- its webhooks subscribes to object events (object_feed_on holds the feed's maximum length).
local function object_feed_append(tp, op, bucket, name, ver, size, sha256, ctype, now)
  local maxlen = redis.call('GET', object_feed_on_key(tp))
  if not maxlen then return end
  local seq = redis.call('HINCRBY', seq_key(tp), 'ofeed', 1)
  redis.call('XADD', object_feed_key(tp), 'MAXLEN', tonumber(maxlen), seq .. '-0', 'op', op, 'bucket', bucket,
             'name', name, 'ver', ver, 'size', size, 'sha256', sha256 or '', 'ctype', ctype or '', 'u', now)
end

local function install_version(tp, b, name, v, if_match, if_none_match, grace_ms, quota)
  local mkey = object_meta_key(tp, b.id, name)
  local cur, refusal = check_install(tp, b, name, v.size, if_match, if_none_match, quota)
  if not cur then return refusal end
  local exists = cur[2] ~= false
  local now = server_ms()
  local due = now + grace_ms
  local version, created = 1, now
  if exists then
    version = tonumber(cur[4]) + 1
    created = tonumber(cur[5])
    discard_segments(tp, cur[1], due)
    account(tp, b.key, 0, v.size - tonumber(cur[2]))
    redis.call('DEL', mkey)
  else
    redis.call('ZADD', object_index_key(tp, b.id), 0, name)
    account(tp, b.key, 1, v.size)
  end
  redis.call('HSET', mkey, 'segs', v.segs, 'size', v.size, 'sha256', v.sha256, 'chunks', v.chunks,
             'chunk_size', v.chunk_size, 'ctype', v.ctype, 'desc', v.desc, 'meta', v.meta,
             'ver', version, 'c', created, 'u', now)
  object_feed_append(tp, 'put', b.name, name, version, v.size, v.sha256, v.ctype, now)
  return {'OK', exists and 0 or 1, version, created, now, due}
end
