-- include: _object_lib
-- include: _object_multipart
-- Abort a multipart upload: the collector takes its parts right away.
-- KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] object name ARGV[4] bucket.
-- Returns {'OK', garbage due ms} or an error.
local tp, id = ARGV[1], ARGV[2]
local up = load_multipart(tp, id, ARGV[4], ARGV[3])
if not up then return no_upload(id) end
local now = server_ms()
redis.call('HSET', up.key, 'state', 'aborted')
redis.call('ZADD', garbage_key(tp), now, id)
return {'OK', now}
