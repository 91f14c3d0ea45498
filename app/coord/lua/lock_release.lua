-- include: _kv_lib
-- include: _coord_lib
-- Release a lock (by its holder), or withdraw a waiter's ticket. KEYS[1] the lock hash.
-- ARGV[1] tenant prefix, ARGV[2] lock name, ARGV[3] lease id, ARGV[4] fencing token|'' (any),
-- ARGV[5] ticket ('' = release; else withdraw that ticket and nothing else).
-- Returns {'OK', token released|0} or {'E', 'not_lock_holder', holder|''}: the lease does not
-- hold the lock (another does, its lease has ended, or the token is not the holder's).
local tp, name, lease, token, ticket = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lk = lock_key(tp, name)
if ticket ~= '' then
  redis.call('ZREM', lock_queue_key(tp, name), ticket)
  redis.call('HDEL', lock_tickets_key(tp, name), ticket)
  return {'OK', 0}
end
local now = server_ms()
local state = redis.call('HMGET', lk, 'holder', 'token')
local holder = state[1]
if holder and not lease_expiry(tp, holder, now) then holder = nil end
if not holder or holder ~= lease or (token ~= '' and token ~= state[2]) then
  return {'E', 'not_lock_holder', holder or ''}
end
redis.call('HDEL', lk, 'holder', 'at')
return {'OK', state[2]}
