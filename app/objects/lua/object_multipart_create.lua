-- include: _object_lib
-- Start a multipart upload; it expires (and its parts are collected) unless completed in time.
-- KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] object name ARGV[4] upload id
-- ARGV[5] content type ARGV[6] description ARGV[7] metadata JSON ARGV[8] lifetime ms.
-- Returns {'OK', expires ms, created ms} or an error.
local tp, id = ARGV[1], ARGV[4]
local b = load_obucket(tp, ARGV[2])
if not b then return err('bucket_not_found', 'No object bucket named ' .. ARGV[2]) end
local now = server_ms()
local expires = now + tonumber(ARGV[8])
redis.call('HSET', upload_key(tp, id), 'kind', 'multipart', 'state', 'pending', 'chunks', 0,
           'bid', b.id, 'bucket', b.name, 'name', ARGV[3], 'ctype', ARGV[5], 'desc', ARGV[6],
           'meta', ARGV[7], 'chunk_size', b.chunk_size, 'max', b.max, 'c', now, 'x', expires)
redis.call('ZADD', garbage_key(tp), expires, id)
return {'OK', expires, now}
