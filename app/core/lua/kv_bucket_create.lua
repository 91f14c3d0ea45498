-- include: _kv_lib
-- Create a bucket. KEYS[1] bucket hash. ARGV[1] tenant prefix, ARGV[2] name, ARGV[3] history,
-- ARGV[4] default ttl (s, 0 = none), ARGV[5] max value size (0 = the global limit), ARGV[6] description.
-- Returns {'OK', id, created_ms} or {'E', 'bucket_exists', ''}.
local tp, name = ARGV[1], ARGV[2]
local bkey = bucket_key(tp, name)
if redis.call('EXISTS', bkey) == 1 then return {'E', 'bucket_exists', ''} end
local id = redis.call('HINCRBY', seq_key(tp), 'bucket', 1)
local now = server_ms()
redis.call('HSET', bkey, 'id', id, 'rev', 0, 'keys', 0, 'bytes', 0, 'history', ARGV[3], 'ttl', ARGV[4],
           'max_value_size', ARGV[5], 'description', ARGV[6], 'created_at', now)
redis.call('ZADD', buckets_key(tp), 0, name)
if name ~= 'default' then redis.call('HINCRBY', usage_key(tp), 'buckets', 1) end
return {'OK', id, now}
