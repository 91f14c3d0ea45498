-- include: _kv_lib
-- Create a bucket. KEYS[1] bucket hash. ARGV[1] tenant prefix, ARGV[2] name, ARGV[3] history,
-- ARGV[4] default ttl (s, 0 = none), ARGV[5] max value size (0 = the global limit), ARGV[6] description,
-- ARGV[7] default quota of buckets (0 = unlimited; the `default` bucket does not count),
-- ARGV[8] '1' = search on (see _search_lib.lua).
-- Returns {'OK', id, created_ms} or {'E', 'bucket_exists' | 'quota_exceeded', detail}.
local tp, name = ARGV[1], ARGV[2]
local bkey = bucket_key(tp, name)
if redis.call('EXISTS', bkey) == 1 then return {'E', 'bucket_exists', ''} end
if name ~= 'default' then
  local limit = quota(tp, 'max_buckets', tonumber(ARGV[7]))
  local used = tonumber(redis.call('HGET', usage_key(tp), 'buckets')) or 0
  if limit > 0 and used + 1 > limit then return {'E', 'quota_exceeded', 'max_buckets ' .. limit .. ' ' .. used} end
end
local id = redis.call('HINCRBY', seq_key(tp), 'bucket', 1)
local now = server_ms()
-- Keys of a bucket created again under a deleted one's name continue above its versions.
local vfloor = tonumber(redis.call('HGET', version_floors_key(tp), name)) or 0
redis.call('HSET', bkey, 'id', id, 'rev', 0, 'keys', 0, 'bytes', 0, 'history', ARGV[3], 'ttl', ARGV[4],
           'max_value_size', ARGV[5], 'description', ARGV[6], 'created_at', now, 'vfloor', vfloor, 'vmax', vfloor)
redis.call('ZADD', buckets_key(tp), 0, name)
if name ~= 'default' then redis.call('HINCRBY', usage_key(tp), 'buckets', 1) end
if ARGV[8] == '1' then
  redis.call('HSET', bkey, 'search', 1)
  redis.call('ZADD', search_buckets_key(tp), 0, name)
end
return {'OK', id, now}
