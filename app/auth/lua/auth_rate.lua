-- Take one request from a client address's budget of anonymous /auth requests (GCRA: one
-- timestamp per address, the same arithmetic as the tenants' ratelimit_take.lua).
-- KEYS[1] the address's budget. ARGV[1] ms per request (60000 / per-minute rate), ARGV[2] burst.
-- Returns {'OK', 1, 0} (granted) or {'OK', 0, ms until the next request is allowed}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local capacity = burst * interval
if now + capacity - tat < interval then
  return {'OK', 0, math.ceil(tat + interval - (now + capacity))}
end
tat = tat + interval
redis.call('SET', KEYS[1], tat, 'PX', math.ceil(capacity) + 1000)
return {'OK', 1, 0}
