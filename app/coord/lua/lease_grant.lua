-- Grant a lease. KEYS[1] the tenant's lease set. ARGV[1] tenant prefix, ARGV[2] lease id,
-- ARGV[3] ttl (seconds), ARGV[4] the most live leases a tenant holds.
-- Returns {'OK', expiry ms, now} or {'E', 'too_many_leases', limit}.
local tp, id, ttl, most = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leases = leases_key(tp)
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
if redis.call('ZCARD', leases) >= most then return {'E', 'too_many_leases', tostring(most)} end
local x = now + ttl * 1000
local lk = lease_key(tp, id)
redis.call('HSET', lk, 'ttl', ttl, 'x', x, 'c', now)
redis.call('PEXPIREAT', lk, x)
redis.call('ZADD', leases, x, id)
return {'OK', x, now}
