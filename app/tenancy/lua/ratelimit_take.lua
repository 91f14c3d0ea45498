-- Take up to ARGV[3] tokens from a tenant's request budget (GCRA: one timestamp per tenant).
-- KEYS[1] the tenant's rate-limit key. ARGV[1] ms per token (1000 / rate), ARGV[2] burst,
-- ARGV[3] tokens wanted. Returns {'OK', granted, remaining, ms until the bucket is full again,
-- ms until the next token when none was granted}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local capacity = burst * interval
local available = math.floor((now + capacity - tat) / interval)
local granted = math.max(0, math.min(wanted, available))
local wait = 0
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], tat, 'PX', math.ceil(capacity) + 1000)
else
  wait = math.ceil(tat + interval - (now + capacity))
end
local remaining = math.max(0, math.floor((now + capacity - tat) / interval))
return {'OK', granted, remaining, math.ceil(tat - now), wait}
