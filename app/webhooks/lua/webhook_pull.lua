-- include: _webhook_lib
-- One step of a worker on one webhook: take (or renew) its lease, move the changes the webhook
-- subscribes to from the buckets' change feeds (and the object feed) into its queue, from its cursors,
-- and hand back the head of the queue when it is due. Atomic: a change is queued and its cursor moves
-- in one step, so a worker killed at any point loses nothing and queues nothing twice.
-- KEYS[1] the tenant's webhooks hash. ARGV[1] tenant prefix ARGV[2] webhook id ARGV[3] lease token
-- ARGV[4] lease ms ARGV[5] now ms ARGV[6] most queued deliveries ARGV[7] attempts per second of the
-- tenant (0 = unlimited) ARGV[8] most feed entries read per step.
-- Returns {'OK', state, webhook JSON, head JSON or false, queued, head's next attempt ms or false};
-- state is 'gone', 'busy' (another worker holds it), 'disabled', or due_head's answer.
local tp, hid, token = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, now, backlog = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local rate, budget = tonumber(ARGV[7]), tonumber(ARGV[8])
local hook, hook_raw = load_hook(tp, hid)
if not hook then return {'OK', 'gone', false, false, 0, false} end
if not take_lease(tp, hid, token, lease_ms) then return {'OK', 'busy', hook_raw, false, 0, false} end
local qk = webhook_queue_key(tp, hid)
if not hook.enabled then return {'OK', 'disabled', hook_raw, false, redis.call('ZCARD', qk), false} end

local room = backlog - redis.call('ZCARD', qk)
local prefix = hook.key_prefix or ''
local wanted = {}
for _, e in ipairs(hook.events) do wanted[e] = true end

local function fields_of(entry)
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  return f
end

local function rev_of(id) return tonumber(string.match(id, '^(%d+)')) end

local function gap(feed, bucket, bid, from, to, reason)
  enqueue(tp, hid, {type = 'gap', msg = 'msg_gap_' .. feed .. '_' .. (bid or '') .. '_' .. from, bucket = bucket,
                    bid = bid, from_rev = from, to_rev = to, reason = reason}, now)
  room = room - 1
end

-- Queues the matching events of a KV feed after `after`; returns the last revision read, how many
-- entries were read and whether the last one was the bucket's purge (its incarnation's end).
local function drain_kv(name, bid, after)
  if room <= 0 or budget <= 0 then return after, 0, false end
  local entries = redis.call('XRANGE', feed_key(tp, bid), '(' .. after .. '-0', '+', 'COUNT', math.min(room, budget))
  local last, read, purged = after, 0, false
  for _, entry in ipairs(entries) do
    if room <= 0 or budget <= 0 then break end
    budget = budget - 1
    local rev, f = rev_of(entry[1]), fields_of(entry)
    local op = f.op
    local kind = 'kv.' .. op
    local match
    if op == 'purge' then
      match = wanted['kv.delete']
    else
      match = wanted[kind] and string.sub(f.key or '', 1, #prefix) == prefix
    end
    if match then
      enqueue(tp, hid, {type = kind, msg = 'msg_kv_' .. bid .. '_' .. rev, bucket = name, bid = bid, rev = rev,
                        key = f.key, ver = tonumber(f.ver), u = tonumber(f.u)}, now)
      room = room - 1
    end
    last, read, purged = rev, read + 1, op == 'purge'
  end
  return last, read, purged
end

-- A gap when the feed's oldest entry is past the revision after `at`; returns where reading goes on.
local function skip_trimmed(name, bid, at, top)
  local first = redis.call('XRANGE', feed_key(tp, bid), '-', '+', 'COUNT', 1)[1]
  local first_rev = first and rev_of(first[1]) or top + 1
  if first_rev > at + 1 and room > 0 then
    gap('kv', name, bid, at + 1, first_rev - 1, 'the change feed was trimmed past the webhook\'s position')
    return first_rev - 1
  end
  return at
end

local function follow_bucket(name)
  local cur = kv_cursor(tp, hid, name)
  local f = redis.call('HMGET', bucket_key(tp, name), 'id', 'rev')
  local bid, rev = f[1], tonumber(f[2]) or 0
  if not cur then
    if not bid then return end
    cur = {bid = bid, rev = 0}  -- a bucket created after the webhook: from its first change
    set_kv_cursor(tp, hid, name, bid, 0)
  end
  if cur.bid ~= bid then
    -- The bucket was deleted (and maybe created again): the rest of the old incarnation's feed first,
    -- up to its purge event; a gap if that feed is gone or trimmed past us.
    local fk = feed_key(tp, cur.bid)
    if room <= 0 or budget <= 0 then return end
    local exists = redis.call('EXISTS', fk) == 1
    local at = cur.rev
    if exists then at = skip_trimmed(name, cur.bid, at, at) end
    local last, read, purged = drain_kv(name, cur.bid, at)
    if not purged then
      if exists or read > 0 then
        set_kv_cursor(tp, hid, name, cur.bid, last)
        return  -- more of the old feed, or its purge event, still to come
      end
      if room <= 0 then return end
      gap('kv', name, cur.bid, cur.rev + 1, false, 'the bucket was deleted and its change feed has expired')
    end
    if bid then set_kv_cursor(tp, hid, name, bid, 0) else redis.call('HDEL', webhook_cursors_key(tp, hid), 'kv:' .. name) end
    return
  end
  if rev <= cur.rev or room <= 0 or budget <= 0 then return end
  local at = skip_trimmed(name, bid, cur.rev, rev)
  local last = drain_kv(name, bid, at)
  set_kv_cursor(tp, hid, name, bid, last)
end

if subscribes(hook, 'kv.') then
  local names = hook.buckets
  if all_buckets(hook) then
    names = redis.call('ZRANGE', buckets_key(tp), 0, -1)
    -- and buckets deleted since (their cursor remains until their feed is drained)
    local seen = {}
    for _, n in ipairs(names) do seen[n] = true end
    local fields = redis.call('HKEYS', webhook_cursors_key(tp, hid))
    for _, field in ipairs(fields) do
      local n = string.match(field, '^kv:(.*)$')
      if n and not seen[n] then names[#names + 1] = n end
    end
  end
  for _, name in ipairs(names) do
    if room <= 0 or budget <= 0 then break end
    follow_bucket(name)
  end
end

if subscribes(hook, 'object.') and room > 0 and budget > 0 then
  local ck = webhook_cursors_key(tp, hid)
  local at = tonumber(redis.call('HGET', ck, 'obj')) or 0
  local top = tonumber(redis.call('HGET', seq_key(tp), 'ofeed')) or 0
  if top > at then
    local ok = object_feed_key(tp)
    local first = redis.call('XRANGE', ok, '-', '+', 'COUNT', 1)[1]
    local first_seq = first and rev_of(first[1]) or top + 1
    if first_seq > at + 1 then
      gap('obj', false, false, at + 1, first_seq - 1, 'the object feed was trimmed past the webhook\'s position')
      at = first_seq - 1
    end
    local every = all_buckets(hook)
    local buckets = {}
    for _, b in ipairs(hook.buckets) do buckets[b] = true end
    local entries = redis.call('XRANGE', ok, '(' .. at .. '-0', '+', 'COUNT', math.max(0, math.min(room, budget)))
    for _, entry in ipairs(entries) do
      if room <= 0 or budget <= 0 then break end
      budget = budget - 1
      local seq, f = rev_of(entry[1]), fields_of(entry)
      local kind = 'object.' .. f.op
      if wanted[kind] and (every or buckets[f.bucket]) and string.sub(f.name, 1, #prefix) == prefix then
        enqueue(tp, hid, {type = kind, msg = 'msg_obj_' .. seq, bucket = f.bucket, rev = seq, key = f.name,
                          ver = tonumber(f.ver), size = tonumber(f.size), sha256 = f.sha256, ctype = f.ctype,
                          u = tonumber(f.u)}, now)
        room = room - 1
      end
      at = seq
    end
    redis.call('HSET', ck, 'obj', at)
  end
end

local head, state, next_ms = due_head(tp, hid, now, rate)
return {'OK', state, hook_raw, head or false, redis.call('ZCARD', qk), next_ms or false}
