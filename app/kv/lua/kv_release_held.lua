-- include: _kv_lib
-- Worker: release up to ARGV[2] held items of one tenant whose time has come: the history of a
-- deleted key (the list is deleted, its bytes leave kv_history_bytes) and the feed of a deleted
-- bucket (deleted, its bytes leave kv_feed_bytes). Only buckets with a release due are visited,
-- and only their due keys (tenant zsets history_buckets and dead_feeds, scored by time).
-- KEYS[1] the tenant's history_buckets sorted set. ARGV[1] tenant prefix, ARGV[2] most items.
-- Returns {'OK', the tenant's next release time (ms) or '', items released}.
local tp = ARGV[1]
local budget = tonumber(ARGV[2])
local now = server_ms()
local released = 0
for _, name in ipairs(redis.call('ZRANGEBYSCORE', history_buckets_key(tp), '-inf', now)) do
  if released >= budget then break end
  local b = load_bucket(tp, name, false)
  if not b then
    redis.call('ZREM', history_buckets_key(tp), name)  -- deleted: its history stopped counting then
  else
    local gone, gone_bytes = deleted_keys_key(tp, b.id), deleted_history_bytes_key(tp, b.id)
    for _, key in ipairs(redis.call('ZRANGEBYSCORE', gone, '-inf', now, 'LIMIT', 0, budget - released)) do
      local bytes = tonumber(redis.call('HGET', gone_bytes, key)) or 0
      if redis.call('EXISTS', entry_key(tp, b.id, key)) == 0 then redis.call('DEL', history_key(tp, b.id, key)) end
      redis.call('HDEL', gone_bytes, key)
      redis.call('ZREM', gone, key)
      if bytes > 0 then account_history(tp, b, -bytes) end
      released = released + 1
    end
    schedule_by_first(history_buckets_key(tp), gone, name)
  end
end
if released < budget then
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', dead_feeds_key(tp), '-inf', now, 'LIMIT', 0, budget - released)) do
    local bid, bytes = string.match(member, '^(%d+):(%d+)$')
    if bid then
      redis.call('DEL', feed_key(tp, bid))
      if tonumber(bytes) > 0 then redis.call('HINCRBY', usage_key(tp), 'kv_feed_bytes', -tonumber(bytes)) end
    end
    redis.call('ZREM', dead_feeds_key(tp), member)
    released = released + 1
  end
end
local next_at
for _, zset in ipairs({history_buckets_key(tp), dead_feeds_key(tp)}) do
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if first[2] and (not next_at or tonumber(first[2]) < next_at) then next_at = tonumber(first[2]) end
end
if next_at then
  redis.call('SET', held_scheduled_key(tp), next_at)
  return {'OK', next_at, released}
end
redis.call('DEL', held_scheduled_key(tp))
return {'OK', '', released}
