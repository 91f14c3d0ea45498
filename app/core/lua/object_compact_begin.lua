-- include: _object_lib
-- Start a compaction: register its fresh upload id as pending garbage and return the object's
-- current content. KEYS[1] object meta hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] idle ms.
-- Returns {'OK', segs, size, sha256, chunk_size} or {'E', 'object_not_found', ''}.
local f = redis.call('HMGET', KEYS[1], 'segs', 'size', 'sha256', 'chunk_size')
if not f[2] then return err('object_not_found') end
stage_pending(ARGV[1], ARGV[2], 'compact', server_ms() + tonumber(ARGV[3]))
return {'OK', f[1], f[2], f[3], f[4]}
