-- include: _object_lib
-- Delete an object bucket. KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] name ARGV[3] force '1'|''.
-- Without force the bucket must be empty. With force its objects vanish at once (the usage
-- drops now, the bytes count as garbage until collected) and the worker purges them: the bucket id goes to the tenant's object trash.
-- Returns {'OK', objects, bytes, trash due ms or 0} or an error.
local tp = ARGV[1]
local b = load_obucket(tp, ARGV[2])
if not b then return err('bucket_not_found', 'No object bucket named ' .. ARGV[2]) end
local f = redis.call('HMGET', b.key, 'objects', 'bytes')
local objects, bytes = tonumber(f[1]) or 0, tonumber(f[2]) or 0
if objects > 0 and ARGV[3] ~= '1' then
  return err('bucket_not_empty', 'Bucket ' .. b.name .. ' holds ' .. objects .. ' objects; delete them or pass force=true')
end
account(tp, b.key, -objects, -bytes)
redis.call('DEL', b.key)
redis.call('ZREM', obuckets_key(tp), b.name)
if objects == 0 then
  redis.call('DEL', object_index_key(tp, b.id))
  return {'OK', 0, 0, 0}
end
-- Their bytes are garbage from now on (object_purge_page hands them to the collector as counted).
count_garbage(tp, bytes)
local due = server_ms()
redis.call('ZADD', object_trash_key(tp), due, b.id)
return {'OK', objects, bytes, due}
