-- Spend a refresh token and issue its successor, or revoke the family on reuse.
-- KEYS[1] old token hash, KEYS[2] family marker, KEYS[3] new token hash, KEYS[4] the user hash,
-- KEYS[5] the tenant's session cut-off hash (before, keep)
-- ARGV[1] family id (the session), ARGV[2] lifetime (s), ARGV[3] when the session began (ms)
-- Returns {'OK', username} or {'E', code, ''}: refresh_revoked (session ended), refresh_unknown (no
-- such token), refresh_reused (spent already: the family is revoked now).
if redis.call('GET', KEYS[2]) == 'revoked' then return {'E', 'refresh_revoked', ''} end
local cutoff = redis.call('HMGET', KEYS[5], 'before', 'keep')
if cutoff[1] and tonumber(ARGV[3]) < tonumber(cutoff[1]) and cutoff[2] ~= ARGV[1] then
  return {'E', 'refresh_revoked', ''}
end
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'E', 'refresh_unknown', ''} end
if state ~= 'active' then
  redis.call('SET', KEYS[2], 'revoked', 'EX', ARGV[2])
  return {'E', 'refresh_reused', ''}
end
redis.call('HSET', KEYS[1], 'state', 'spent')
redis.call('HSET', KEYS[3], 'family', ARGV[1], 'state', 'active')
redis.call('EXPIRE', KEYS[3], ARGV[2])
return {'OK', redis.call('HGET', KEYS[4], 'username') or ''}
