-- include: _kv_lib
-- include: _watch_lib
-- Open a watch stream: take a lease on one of the tenant's watch slots and resolve the bucket.
-- KEYS[1] the tenant's watchers sorted set (member stream id, score lease expiry ms), KEYS[2] the
-- bucket hash. ARGV[1] tenant prefix, ARGV[2] bucket name ('' : every bucket, a tenant-wide stream),
-- ARGV[3] history depth of a new `default` bucket, ARGV[4] default limit of open streams
-- (0 = unlimited; the limits hash overrides it), ARGV[5] stream id, ARGV[6] now (ms), ARGV[7] lease expiry (ms).
-- The bucket `default` exists implicitly: it is created here as on a first write.
-- Returns {'OK', bucket id, bucket revision, id of the first feed entry or ''} or {'E', code, detail};
-- for '' {'OK', {name, bucket id, revision, first feed entry id or '', ...}} (see watched_buckets).
local tp, name = ARGV[1], ARGV[2]
if name ~= '' and name ~= 'default' and redis.call('EXISTS', KEYS[2]) == 0 then return {'E', 'bucket_not_found', ''} end
local refused = take_watch_lease(KEYS[1], tp, ARGV[4], ARGV[5], ARGV[6], ARGV[7])
if refused then return refused end
if name == '' then return {'OK', watched_buckets(tp)} end
local b = load_bucket(tp, name, true, tonumber(ARGV[3]))
local rev = redis.call('HGET', b.bkey, 'rev')
local first = redis.call('XRANGE', feed_key(tp, b.id), '-', '+', 'COUNT', 1)
return {'OK', b.id, rev, first[1] and first[1][1] or ''}
