-- include: _object_lib
-- Purge up to ARGV[3] objects of a force-deleted bucket (usage was settled by the delete,
-- which counted their bytes as garbage);
-- their chunks become garbage after the grace period. The bucket leaves the trash when empty.
-- KEYS[1] object trash set. ARGV[1] tenant prefix ARGV[2] bucket id ARGV[3] limit ARGV[4] grace ms.
-- Returns {'OK', objects left, garbage due ms}.
local tp, bid = ARGV[1], ARGV[2]
local idx = object_index_key(tp, bid)
local due = server_ms() + tonumber(ARGV[4])
for _, name in ipairs(redis.call('ZRANGE', idx, 0, tonumber(ARGV[3]) - 1)) do
  local mkey = object_meta_key(tp, bid, name)
  discard_segments(tp, redis.call('HGET', mkey, 'segs'), due, true)
  redis.call('DEL', mkey)
  redis.call('ZREM', idx, name)
end
local left = redis.call('ZCARD', idx)
if left == 0 then redis.call('ZREM', KEYS[1], bid) end
return {'OK', left, due}
