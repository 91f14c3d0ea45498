-- include: _object_lib
-- include: _object_multipart
-- Record a written part; a part written again replaces the earlier one (whose chunks become garbage).
-- KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] object name ARGV[4] part number
-- ARGV[5] part upload id ARGV[6] size ARGV[7] chunks ARGV[8] sha256 ARGV[9] grace ms ARGV[10] bucket.
-- Returns {'OK', garbage due ms or 0} or an error.
local tp, pid = ARGV[1], ARGV[5]
local up = load_multipart(tp, ARGV[2], ARGV[10], ARGV[3])
if not up then return no_upload(ARGV[2]) end
if not is_pending(tp, pid) then return err('upload_expired', 'The part idled too long and was discarded') end
local field = 'p:' .. ARGV[4]
local old_id, old_size, old_chunks = parse_part(redis.call('HGET', up.key, field))
local due = 0
if old_id then  -- its counted bytes (a part of a Redis written before may have none) become garbage
  local bytes = math.min(tonumber(old_size), tonumber(redis.call('HGET', up.key, 'pbytes')) or 0)
  if bytes > 0 then redis.call('HINCRBY', up.key, 'pbytes', -bytes) end  -- never "-0": HINCRBY refuses it
  count_pending(tp, -bytes)
  due = server_ms() + tonumber(ARGV[9])
  discard_id(tp, old_id, old_chunks, due, bytes)
end
redis.call('HSET', up.key, field, pid .. ':' .. ARGV[6] .. ':' .. ARGV[7] .. ':' .. ARGV[8])
-- The part's bytes stay pending, now as the upload's (released when it completes or is collected).
local bytes = adopt_pending(tp, pid)
count_pending(tp, bytes)
redis.call('HINCRBY', up.key, 'pbytes', bytes)
return {'OK', due}
