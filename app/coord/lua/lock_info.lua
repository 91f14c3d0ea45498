-- include: _kv_lib
-- include: _coord_lib
-- A lock's state (read-only). KEYS[1] the lock hash. ARGV[1] tenant prefix, ARGV[2] lock name.
-- Returns {'OK', holder|'' (none, or its lease ended), last token|0, acquired_at|'', waiters}.
local tp, name = ARGV[1], ARGV[2]
local now = server_ms()
local state = redis.call('HMGET', lock_key(tp, name), 'holder', 'token', 'at')
local holder = state[1]
if holder and not lease_expiry(tp, holder, now) then holder = nil end
local at = ''
if holder then at = state[3] end
return {'OK', holder or '', state[2] or 0, at, redis.call('ZCARD', lock_queue_key(tp, name))}
