-- include: _kv_lib
-- Open a watch stream: take a lease on one of the tenant's watch slots and resolve the bucket.
-- KEYS[1] the tenant's watchers sorted set (member stream id, score lease expiry ms), KEYS[2] the
-- bucket hash. ARGV[1] tenant prefix, ARGV[2] bucket name, ARGV[3] history depth of a new `default`
-- bucket, ARGV[4] default limit of open streams (0 = unlimited; the limits hash overrides it),
-- ARGV[5] stream id, ARGV[6] now (ms), ARGV[7] lease expiry (ms).
-- Leases of streams whose process died expire and are pruned here, so the count is right across
-- every API process. The bucket `default` exists implicitly: it is created here as on a first write.
-- Returns {'OK', bucket id, bucket revision, id of the first feed entry or ''} or {'E', code, detail}.
local tp, name = ARGV[1], ARGV[2]
if name ~= 'default' and redis.call('EXISTS', KEYS[2]) == 0 then return {'E', 'bucket_not_found', ''} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[6])
local limit = tonumber(redis.call('HGET', limits_key(tp), 'max_watch_streams') or ARGV[4])
local open = redis.call('ZCARD', KEYS[1])
if limit > 0 and open >= limit then
  return {'E', 'quota_exceeded', 'max_watch_streams ' .. limit .. ' ' .. open}
end
local b = load_bucket(tp, name, true, tonumber(ARGV[3]))
local rev = redis.call('HGET', b.bkey, 'rev')
local first = redis.call('XRANGE', feed_key(tp, b.id), '-', '+', 'COUNT', 1)
redis.call('ZADD', KEYS[1], ARGV[7], ARGV[5])
return {'OK', b.id, rev, first[1] and first[1][1] or ''}
