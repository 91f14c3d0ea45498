-- include: _kv_lib
-- include: _coord_lib
-- Renew a lease for its ttl from now, and the expiry of every key attached to it (no new version,
-- history record or event for them). Cost: O(keys attached). KEYS[1] the lease hash.
-- ARGV[1] tenant prefix, ARGV[2] lease id.
-- Returns {'OK', expiry ms, ttl, now, schedule 1|0} or {'E', 'lease_not_found', id}.
local tp, id = ARGV[1], ARGV[2]
local now = server_ms()
if not lease_expiry(tp, id, now) then return {'E', 'lease_not_found', id} end
local lk = lease_key(tp, id)
local ttl = tonumber(redis.call('HGET', lk, 'ttl'))
local x = now + ttl * 1000
redis.call('HSET', lk, 'x', x)
redis.call('PEXPIREAT', lk, x)
redis.call('ZADD', leases_key(tp), x, id)
local keys_key = lease_keys_key(tp, id)
local schedule = 0
local buckets = {}
for _, member in ipairs(redis.call('SMEMBERS', keys_key)) do
  local name, key = string.match(member, '^([^/]+)/(.*)$')
  local b = buckets[name]
  if b == nil then b = load_bucket(tp, name, false) or false; buckets[name] = b end
  local ek = b and entry_key(tp, b.id, key)
  local cur = ek and redis.call('HMGET', ek, 'ver', 'lease', 'x')
  if cur and cur[1] and cur[2] == id and cur[3] and tonumber(cur[3]) > now then
    redis.call('HSET', ek, 'x', x)
    if index_expiry(tp, b, key, x) == 1 then schedule = 1 end
  else
    redis.call('SREM', keys_key, member)  -- deleted, expired, or attached to another lease since
  end
end
redis.call('PEXPIREAT', keys_key, x + LEASE_KEYS_GRACE_MS)
return {'OK', x, ttl, now, schedule}
