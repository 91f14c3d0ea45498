-- include: _kv_lib
-- include: _coord_lib
-- Worker: remove up to ARGV[H+1] expired entries of one tenant, through every index, with an
-- `expire` event in each bucket's feed. Cost is proportional to what expired: only buckets
-- whose earliest expiry has passed are visited, and only their expired keys.
-- KEYS[1] the tenant's ttl_buckets sorted set. ARGV[1..H] the common header (ARGV[2] unused),
-- ARGV[H+1] the most entries to remove in this call.
-- Each removal also appends its `kv.expire` audit event to the tenant's audit outbox, in this same
-- atomic step, so a worker killed between a sweep and its audit write loses no event: the sweep of
-- the tenant (still due until it finishes) moves the outbox into the audit stream.
-- Returns {'OK', tenant's next expiry ms or '', {bucket, key, version, revision, ...}, held-bytes
-- release time to schedule or ''} (one quadruple per removed entry: fewer than ARGV[H+1] of them
-- means nothing more is due).
local cfg = read_config()
local tp = cfg.tp
local budget = tonumber(ARGV[H + 1])
local now = server_ms()
local out = {}
begin_room(cfg, 0)
local due = redis.call('ZRANGEBYSCORE', ttl_buckets_key(tp), '-inf', now)
local buckets = {}  -- name -> the bucket's table, shared with expire_lease_keys
for _, name in ipairs(due) do
  if budget <= 0 then break end
  local b = buckets[name]
  if b == nil then b = load_bucket(tp, name, false) or false; buckets[name] = b end
  if not b then
    redis.call('ZREM', ttl_buckets_key(tp), name)
  else
    local ttl_idx = ttl_index_key(tp, b.id)
    local expired = redis.call('ZRANGEBYSCORE', ttl_idx, '-inf', now, 'LIMIT', 0, budget)
    for _, key in ipairs(expired) do
      local cur = read_entry(tp, b, key)
      if cur and is_expired(cur, now) then
        local lease = cur[11]
        local res = remove_entry(cfg, b, key, cur, 'expire', now)  -- queues its kv.expire audit event
        budget = budget - 1
        out[#out + 1] = name; out[#out + 1] = key; out[#out + 1] = res[2]; out[#out + 1] = res[1]
        -- A lease's keys go together, in this step, once it has ended (app/kv/lua/_coord_lib.lua).
        if lease then budget = budget - expire_lease_keys(cfg, lease, now, out, buckets) end
      elseif cur and cur[7] then
        redis.call('ZADD', ttl_idx, tonumber(cur[7]), key)  -- rewritten with a later expiry
      else
        redis.call('ZREM', ttl_idx, key)  -- rewritten without expiry, or gone
      end
    end
    schedule_by_first(ttl_buckets_key(tp), ttl_idx, name)
  end
end
local next_due = redis.call('ZRANGE', ttl_buckets_key(tp), 0, 0, 'WITHSCORES')
if next_due[2] then
  redis.call('SET', ttl_scheduled_key(tp), next_due[2])
  return {'OK', next_due[2], out, cfg.held_at or ''}
end
redis.call('DEL', ttl_scheduled_key(tp))
return {'OK', '', out, cfg.held_at or ''}
