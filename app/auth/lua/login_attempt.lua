-- Reserve a login attempt before the password is checked, or give a reservation back after a
-- success: deciding and counting are one step, so concurrent attempts can never pass the limits.
-- KEYS[1] failures of one username from one client address, KEYS[2] failures from that address
-- (both in the address's slot). ARGV[1] 'reserve' or 'release'.
-- reserve: ARGV[2] max per username and address, ARGV[3] max per address, ARGV[4] window (s).
--   Returns {'OK', 1, 0} (reserved: counted as a failure until given back) or {'OK', 0, seconds
--   until the fuller of the two windows ends} (refused: nothing counted).
-- release: the username's failures from the address are forgotten and the address gets its
--   reservation back. Returns {'OK', 1, 0}.
-- (EXPIRE ... NX would start a window in one command, but needs Redis 7; 6.2 must work.)
local user_key, address_key = KEYS[1], KEYS[2]
if ARGV[1] == 'release' then
  redis.call('DEL', user_key)
  if (tonumber(redis.call('GET', address_key)) or 0) > 0 then redis.call('DECR', address_key) end
  return {'OK', 1, 0}
end
local max_user, max_address, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
if (tonumber(redis.call('GET', user_key)) or 0) >= max_user then
  wait = redis.call('TTL', user_key)
end
if (tonumber(redis.call('GET', address_key)) or 0) >= max_address then
  wait = math.max(wait, redis.call('TTL', address_key))
end
if wait ~= 0 then return {'OK', 0, math.max(wait, 1)} end
for _, key in ipairs({user_key, address_key}) do
  redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, window) end
end
return {'OK', 1, 0}
