-- include: _object_lib
-- Swap an object to its compacted copy, only if it still has the content that was copied.
-- The old chunks become garbage after the grace period (readers finish); a stale copy is
-- discarded. Version, SHA-256 and dates are unchanged: the bytes are the same.
-- KEYS[1] object meta hash. ARGV[1] tenant prefix ARGV[2] copy upload id ARGV[3] segs copied
-- ARGV[4] chunks of the copy ARGV[5] grace ms ARGV[6] compaction queue member.
-- Returns {'OK', swapped 1|0, garbage due ms}.
local tp, id = ARGV[1], ARGV[2]
if not is_pending(tp, id) then return {'OK', 0, server_ms()} end
local f = redis.call('HMGET', KEYS[1], 'segs', 'size')
local now = server_ms()
if f[1] ~= ARGV[3] then
  local copy = redis.call('HMGET', upload_key(tp, id), 'chunks', 'bytes')
  count_pending(tp, -(tonumber(copy[2]) or 0))
  discard_id(tp, id, copy[1], now, tonumber(copy[2]) or 0)
  return {'OK', 0, now}
end
local due = now + tonumber(ARGV[5])
discard_segments(tp, f[1], due)
redis.call('HSET', KEYS[1], 'segs', id .. ':' .. f[2] .. ':' .. ARGV[4], 'chunks', ARGV[4])
redis.call('HDEL', KEYS[1], 'verified')  -- new chunks: the next verify hashes them
adopt_pending(tp, id)
redis.call('ZREM', object_compactions_key(tp), ARGV[6])
return {'OK', 1, due}
