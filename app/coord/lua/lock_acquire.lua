-- include: _kv_lib
-- include: _coord_lib
-- One attempt to take a lock for a lease. The lock is free when it has no holder or its holder's
-- lease is gone (revoked or expired). Waiters queue in order of arrival: a free lock goes to the
-- first live ticket of the queue (a waiter renews its ticket at each attempt; one not renewed for
-- ARGV[5] ms is dropped), so an attempt without a ticket (no wait) never jumps the queue.
-- Each acquisition takes the next fencing token (HINCRBY on the lock: never reset, strictly increasing).
-- KEYS[1] the lock hash. ARGV[1] tenant prefix, ARGV[2] lock name, ARGV[3] lease id,
-- ARGV[4] ticket ('' = do not queue), ARGV[5] ticket life (ms).
-- Returns {'OK', 'acquired'|'held'|'busy', token, acquired_at ms, holder|''}; 'held' = the lease
-- already holds it; or {'E', 'lease_not_found', id}.
local tp, name, lease, ticket, life = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local now = server_ms()
if not lease_expiry(tp, lease, now) then return {'E', 'lease_not_found', lease} end
local lk, q, tickets = lock_key(tp, name), lock_queue_key(tp, name), lock_tickets_key(tp, name)
local state = redis.call('HMGET', lk, 'holder', 'token', 'at')
local holder = state[1]
if holder == lease then return {'OK', 'held', state[2], state[3], holder} end
if holder and not lease_expiry(tp, holder, now) then
  redis.call('HDEL', lk, 'holder', 'at')  -- its lease ended: released
  holder = nil
end
local head
while true do
  head = redis.call('ZRANGE', q, 0, 0)[1]
  if not head then break end
  local alive = tonumber(redis.call('HGET', tickets, head))
  if alive and alive > now then break end
  redis.call('ZREM', q, head)
  redis.call('HDEL', tickets, head)
end
if not holder and (not head or head == ticket) then
  local token = redis.call('HINCRBY', lk, 'token', 1)
  redis.call('HSET', lk, 'holder', lease, 'at', now)
  if ticket ~= '' then
    redis.call('ZREM', q, ticket)
    redis.call('HDEL', tickets, ticket)
  end
  return {'OK', 'acquired', token, now, lease}
end
if ticket ~= '' then
  if not redis.call('ZSCORE', q, ticket) then
    redis.call('ZADD', q, redis.call('HINCRBY', lk, 'arrivals', 1), ticket)
  end
  redis.call('HSET', tickets, ticket, now + life)
end
return {'OK', 'busy', state[2] or 0, state[3] or '', holder or ''}
