-- Take back the leases of streams that are still open but whose leases lapsed and were pruned (the
-- data Redis, or this process, stalled longer than a lease): each only while the tenant has room, so
-- a stall never leaves more streams open than the limit.
-- KEYS[1] the tenant's watchers sorted set (member stream id, score lease expiry ms).
-- ARGV[1] tenant prefix, ARGV[2] default limit of open streams (0 = unlimited; the limits hash
-- overrides it), ARGV[3] now (ms), ARGV[4] lease expiry (ms), ARGV[5..] stream ids.
-- A lease that is still there is simply renewed. Returns {'OK', {stream ids with no room left}}.
local tp = ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local limit = tonumber(redis.call('HGET', limits_key(tp), 'max_watch_streams') or ARGV[2])
local lost = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) or limit <= 0 or redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], ARGV[4], id)
  else
    lost[#lost + 1] = id
  end
end
return {'OK', lost}
