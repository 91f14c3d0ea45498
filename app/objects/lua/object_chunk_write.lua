-- include: _object_lib
-- Write a chunk of a pending upload (or a piece of it) and push its idle deadline back. Refused
-- (upload_expired) once the upload is no longer pending (committed, discarded, or claimed by the collector).
-- KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] chunk index ARGV[4] idle ms
-- ARGV[5] the bytes ARGV[6] '1' to append them to the chunk, '' to start it. Returns {'OK'} or an error.
local tp, id, index = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then
  return err('upload_expired', 'The upload idled too long and was discarded; start it again')
end
redis.call(ARGV[6] == '1' and 'APPEND' or 'SET', chunk_key(tp, id, index), ARGV[5])
if (tonumber(redis.call('HGET', KEYS[1], 'chunks')) or 0) < index + 1 then
  redis.call('HSET', KEYS[1], 'chunks', index + 1)
end
redis.call('ZADD', garbage_key(tp), 'XX', server_ms() + tonumber(ARGV[4]), id)
return {'OK'}
