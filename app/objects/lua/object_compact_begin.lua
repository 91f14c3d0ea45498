-- include: _object_lib
-- Start compacting an object: register a fresh upload id for the copy as pending garbage and
-- return the object's current content. An object that is gone or already one segment leaves
-- the compaction queue here.
-- KEYS[1] object meta hash. ARGV[1] tenant prefix ARGV[2] copy upload id ARGV[3] idle ms
-- ARGV[4] compaction queue member ("<bucket id>:<name>").
-- Returns {'OK', segs, size, sha256, chunk_size}, {'OK'} when it is one segment already, or
-- {'E', 'object_not_found', ''}.
local tp = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'segs', 'size', 'sha256', 'chunk_size')
if not f[2] or not string.find(f[1], ',', 1, true) then
  redis.call('ZREM', object_compactions_key(tp), ARGV[4])
  if not f[2] then return err('object_not_found') end
  return {'OK'}
end
stage_pending(tp, ARGV[2], 'compact', server_ms() + tonumber(ARGV[3]), 0)
return {'OK', f[1], f[2], f[3], f[4]}
