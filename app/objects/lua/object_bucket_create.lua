-- include: _object_lib
-- Create an object bucket. KEYS[1] bucket hash (routes to the tenant's slot).
-- ARGV[1] tenant prefix  ARGV[2] name  ARGV[3] chunk size  ARGV[4] max object size (0 = global)
-- ARGV[5] description.
-- Returns {'OK', id, created ms} or {'E', 'bucket_exists', ''}.
local tp, name = ARGV[1], ARGV[2]
local key = obucket_key(tp, name)
if redis.call('EXISTS', key) == 1 then return err('bucket_exists') end
local id = redis.call('HINCRBY', seq_key(tp), 'obucket', 1)
local now = server_ms()
redis.call('HSET', key, 'id', id, 'chunk_size', ARGV[3], 'max_object_size', ARGV[4],
           'description', ARGV[5], 'created_at', now, 'objects', 0, 'bytes', 0)
redis.call('ZADD', obuckets_key(tp), 0, name)
return {'OK', id, now}
