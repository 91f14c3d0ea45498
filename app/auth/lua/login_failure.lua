-- Count one failed login; the first failure of a window starts the window.
-- KEYS[1] failure counter of one username; ARGV[1] window (s). Returns {'OK', failures so far}.
-- (EXPIRE ... NX would do it in one command, but needs Redis 7; 6.2 must work.)
local failures = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {'OK', failures}
