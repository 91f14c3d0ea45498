-- include: _object_lib
-- Write a chunk of a pending upload (or a piece of it) and push its idle deadline back. Refused
-- (upload_expired) once the upload is no longer pending (committed, discarded, or claimed by the collector).
-- KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] chunk index ARGV[4] idle ms
-- ARGV[5] the bytes ARGV[6] '1' to append them to the chunk, '' to start it ARGV[7] default object
-- bytes quota, or absent for the worker's compaction copies (not refused, but counted): bytes
-- that would pass the quota are refused before they are stored (see check_write_quota).
-- Returns {'OK'} or an error.
local tp, id, index = ARGV[1], ARGV[2], tonumber(ARGV[3])
local f = redis.call('HMGET', KEYS[1], 'state', 'credit')
if f[1] ~= 'pending' then
  return err('upload_expired', 'The upload idled too long and was discarded; start it again')
end
local ckey = chunk_key(tp, id, index)
local delta = #ARGV[5]
if ARGV[6] ~= '1' then delta = delta - redis.call('STRLEN', ckey) end
if ARGV[7] then
  local over = check_write_quota(tp, delta, tonumber(f[2]) or 0, ARGV[7])
  if over then return over end
end
redis.call(ARGV[6] == '1' and 'APPEND' or 'SET', ckey, ARGV[5])
redis.call('HINCRBY', KEYS[1], 'bytes', delta)
count_pending(tp, delta)
if (tonumber(redis.call('HGET', KEYS[1], 'chunks')) or 0) < index + 1 then
  redis.call('HSET', KEYS[1], 'chunks', index + 1)
end
redis.call('ZADD', garbage_key(tp), 'XX', server_ms() + tonumber(ARGV[4]), id)
return {'OK'}
