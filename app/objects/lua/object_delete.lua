-- include: _object_lib
-- Delete an object; its chunks become garbage after the grace period (readers finish).
-- KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] name ARGV[4] If-Match list
-- ARGV[5] grace ms. Returns {'OK', garbage due ms} or an error.
local tp, name = ARGV[1], ARGV[3]
local b = load_obucket(tp, ARGV[2])
if not b then return err('bucket_not_found', 'No object bucket named ' .. ARGV[2]) end
local mkey = object_meta_key(tp, b.id, name)
local cur = redis.call('HMGET', mkey, 'segs', 'size', 'sha256', 'ver', 'ctype')
if not cur[2] then return err('object_not_found', 'No object named ' .. name) end
if not conditions_hold(cur[3], ARGV[4], '') then
  return err('precondition_failed', 'The object does not match If-Match')
end
local now = server_ms()
local due = now + tonumber(ARGV[5])
discard_segments(tp, cur[1], due)
account(tp, b.key, -1, -tonumber(cur[2]))
redis.call('DEL', mkey)
redis.call('ZREM', object_index_key(tp, b.id), name)
object_feed_append(tp, 'delete', b.name, name, cur[4] or 0, cur[2], cur[3], cur[5], now)
return {'OK', due}
