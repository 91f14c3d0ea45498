-- Webhooks: what the scripts share. A webhook is a JSON record in the tenant's hash webhooks_key
-- (written by the API, read here with cjson); its cursors, queue, deliveries and lease are keys of
-- their own (app/platform/keyspace.py). Deliveries are JSON records keyed by a sequence number.

local function err(code, detail) return {'E', code, detail or ''} end

local function load_hook(tp, hid)
  local raw = redis.call('HGET', webhooks_key(tp), hid)
  if not raw then return nil end
  return cjson.decode(raw), raw
end

local function subscribes(hook, prefix)
  for _, e in ipairs(hook.events) do
    if string.sub(e, 1, #prefix) == prefix then return true end
  end
  return false
end

local function all_buckets(hook)
  for _, b in ipairs(hook.buckets) do
    if b == '*' then return true end
  end
  return false
end

-- The cursor of a bucket name: bucket id and revision delivered up to (nil: never seen).
local function kv_cursor(tp, hid, name)
  local raw = redis.call('HGET', webhook_cursors_key(tp, hid), 'kv:' .. name)
  if not raw then return nil end
  local bid, rev = string.match(raw, '^([^:]+):(%d+)$')
  return {bid = bid, rev = tonumber(rev)}
end

local function set_kv_cursor(tp, hid, name, bid, rev)
  redis.call('HSET', webhook_cursors_key(tp, hid), 'kv:' .. name, bid .. ':' .. rev)
end

-- Cursors at "now" for the buckets the webhook names (every bucket for '*') that have none yet; with
-- `objects`, the object feed cursor too. Changes before the subscription are not delivered.
local function start_cursors(tp, hid, hook, objects)
  local names = hook.buckets
  if all_buckets(hook) then names = redis.call('ZRANGE', buckets_key(tp), 0, -1) end
  for _, name in ipairs(names) do
    if not kv_cursor(tp, hid, name) then
      local f = redis.call('HMGET', bucket_key(tp, name), 'id', 'rev')
      if f[1] then set_kv_cursor(tp, hid, name, f[1], tonumber(f[2]) or 0) end
    end
  end
  if objects then
    redis.call('HSET', webhook_cursors_key(tp, hid), 'obj', tonumber(redis.call('HGET', seq_key(tp), 'ofeed')) or 0)
  end
end

-- The object feed is written while an enabled webhook subscribes to object events, and dropped otherwise.
local function refresh_object_feed(tp, maxlen)
  local wanted = false
  for _, raw in ipairs(redis.call('HVALS', webhooks_key(tp))) do
    local hook = cjson.decode(raw)
    if hook.enabled and subscribes(hook, 'object.') then wanted = true end
  end
  if wanted then
    redis.call('SET', object_feed_on_key(tp), maxlen)
  else
    redis.call('DEL', object_feed_on_key(tp), object_feed_key(tp))
  end
end

-- Appends a delivery (a table without seq) at the tail of the webhook's queue; returns its seq.
local function enqueue(tp, hid, d, now)
  local seq = redis.call('HINCRBY', webhook_cursors_key(tp, hid), '#seq', 1)
  d.seq = seq
  d.state = 'pending'
  d.attempts = d.attempts or 0
  d.created_ms = d.created_ms or now
  d.next_ms = now
  redis.call('HSET', webhook_deliveries_key(tp, hid), seq, cjson.encode(d))
  redis.call('ZADD', webhook_queue_key(tp, hid), seq, seq)
  redis.call('ZADD', webhook_log_key(tp, hid), seq, seq)
  return seq
end

-- Drops the oldest finished deliveries beyond `kept` (pending ones stay).
local function trim_log(tp, hid, kept)
  local lk, qk = webhook_log_key(tp, hid), webhook_queue_key(tp, hid)
  local excess = redis.call('ZCARD', lk) - redis.call('ZCARD', qk) - kept
  if excess <= 0 then return end
  local oldest = redis.call('ZRANGE', lk, 0, excess + 50)
  for _, seq in ipairs(oldest) do
    if excess <= 0 then break end
    if not redis.call('ZSCORE', qk, seq) then
      redis.call('ZREM', lk, seq)
      redis.call('HDEL', webhook_deliveries_key(tp, hid), seq)
      excess = excess - 1
    end
  end
end

-- The head of the queue when it is due and the tenant's rate allows an attempt now: its JSON, else nil
-- and why ('idle', 'waiting', 'throttled').
local function due_head(tp, hid, now, rate)
  local head = redis.call('ZRANGE', webhook_queue_key(tp, hid), 0, 0)[1]
  if not head then return nil, 'idle' end
  local raw = redis.call('HGET', webhook_deliveries_key(tp, hid), head)
  if not raw then
    redis.call('ZREM', webhook_queue_key(tp, hid), head)
    return nil, 'idle'
  end
  local d = cjson.decode(raw)
  if tonumber(d.next_ms) > now then return nil, 'waiting', d.next_ms end
  if rate > 0 then
    local rk = webhook_rate_key(tp, math.floor(now / 1000))
    local used = redis.call('INCR', rk)
    if used == 1 then redis.call('PEXPIRE', rk, 2000) end
    if used > rate then return nil, 'throttled' end
  end
  return raw, 'due'
end

-- Takes or renews the webhook's lease for `token`; false when another worker holds it.
local function take_lease(tp, hid, token, lease_ms)
  local lk = webhook_lease_key(tp, hid)
  local holder = redis.call('GET', lk)
  if holder and holder ~= token then return false end
  redis.call('SET', lk, token, 'PX', lease_ms)
  return true
end
