-- Shared by the object_* scripts (included by app/platform/scripts.py after the key prelude).
-- Content lives in chunks ch:<upload id>:<i> of chunk_size bytes. An object's meta hash names
-- its content as segments "<upload id>:<size>:<chunks>" joined by ','. Every upload id that is
-- not referenced by an object has an up:<id> hash (state, chunks) and a garbage entry whose
-- score says when the worker may delete its chunks: the idle deadline of a pending upload, or
-- now + grace for a replaced version so that its readers can finish.
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
local function stage_pending(tp, id, kind, deadline)
  redis.call('HSET', upload_key(tp, id), 'kind', kind, 'state', 'pending', 'chunks', 0)
  redis.call('ZADD', garbage_key(tp), deadline, id)
end

-- The id is no longer garbage-to-be: its chunks now belong to an object (or a multipart part).
local function adopt_pending(tp, id)
  redis.call('DEL', upload_key(tp, id))
  redis.call('ZREM', garbage_key(tp), id)
end

local function is_pending(tp, id)
  return redis.call('HGET', upload_key(tp, id), 'state') == 'pending'
end

-- Hand an id's chunks to the garbage collector, due at `due` (ms).
local function discard_id(tp, id, chunks, due)
  redis.call('HSET', upload_key(tp, id), 'kind', 'garbage', 'state', 'garbage', 'chunks', chunks)
  redis.call('ZADD', garbage_key(tp), due, id)
end

local function discard_segments(tp, segs, due)
  for id, _, chunks in each_segment(segs) do discard_id(tp, id, chunks, due) end
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

-- {'E', 'quota_exceeded', 'max_object_bytes <limit> <usage>'} when adding `growth` bytes would
-- pass the tenant's object bytes quota (its override in the limits hash, else `default`;
-- 0 = unlimited), else nil. A version no bigger than the one it replaces always passes.
local function check_object_quota(tp, growth, default)
  if growth <= 0 then return nil end
  local limit = redis.call('HGET', limits_key(tp), 'max_object_bytes') or default
  if tonumber(limit) <= 0 then return nil end
  local used = redis.call('HGET', usage_key(tp), 'object_bytes') or '0'
  if tonumber(used) + growth > tonumber(limit) then
    return err('quota_exceeded', 'max_object_bytes ' .. limit .. ' ' .. used)
  end
  return nil
end

-- Make `v` (segs, size, sha256, chunks, chunk_size, ctype, desc, meta) the current version of
-- object `name`, atomically. The replaced version's chunks become garbage after the grace period.
-- `quota` is the default object bytes quota (see check_object_quota).
-- Returns {'OK', created 1|0, version, created ms, updated ms, garbage due ms} or an error.
local function install_version(tp, b, name, v, if_match, if_none_match, grace_ms, quota)
  local mkey = object_meta_key(tp, b.id, name)
  local cur = redis.call('HMGET', mkey, 'segs', 'size', 'sha256', 'ver', 'c')
  local exists = cur[2] ~= false
  if not conditions_hold(exists and cur[3] or nil, if_match, if_none_match) then
    return err('precondition_failed', 'The object does not match If-Match / If-None-Match')
  end
  local over = check_object_quota(tp, v.size - (exists and tonumber(cur[2]) or 0), quota)
  if over then return over end
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
  return {'OK', exists and 0 or 1, version, created, now, due}
end
