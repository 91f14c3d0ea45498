-- include: _kv_lib
-- Delete a bucket: gone for readers at once; its keys are purged here when there are at most
-- ARGV[H+1] of them (counting deleted keys' histories and tag indexes), else by the worker
-- (the bucket id goes to the tenant's trash list).
-- KEYS[1] bucket hash. ARGV[1..H] header, ARGV[H+1] inline purge limit, ARGV[H+2] ms to keep the feed.
-- Its values and history stop counting at once (the purge may come later); its feed, kept for its
-- watchers, counts in kv_feed_bytes until it expires (the worker releases it, kv_release_held.lua).
-- Returns {'OK', revision, purged_inline 1|0, held-bytes release time to schedule|''}
-- or {'E', 'bucket_not_found', ''}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, false)
if not b then return {'E', 'bucket_not_found', ''} end
local tp = cfg.tp
local m = redis.call('HMGET', b.bkey, 'keys', 'bytes', 'hbytes')
local keys, bytes, hbytes = tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or 0
redis.call('HINCRBY', usage_key(tp), 'keys', 0 - keys)  -- never -0: Redis refuses it
redis.call('HINCRBY', usage_key(tp), 'kv_bytes', 0 - bytes)
redis.call('HINCRBY', usage_key(tp), 'kv_history_bytes', 0 - hbytes)
if b.name ~= 'default' then redis.call('HINCRBY', usage_key(tp), 'buckets', -1) end
local rev = redis.call('HINCRBY', b.bkey, 'rev', 1)
feed_append(cfg, b, rev, {'op', 'purge', 'key', '', 'ver', 0, 'u', server_ms()})
redis.call('PEXPIRE', feed_key(tp, b.id), tonumber(ARGV[H + 2]))
local feed_expires = server_ms() + tonumber(ARGV[H + 2])
local fb = tonumber(redis.call('HGET', b.bkey, 'fb')) or 0
redis.call('ZADD', dead_feeds_key(tp), feed_expires, b.id .. ':' .. fb)
local held_at = schedule_held(tp, feed_expires) or ''
-- What POST .../restore needs once the bucket hash is gone: its id (the feed) and settings.
local dm = redis.call('HMGET', b.bkey, 'description', 'created_at')
redis.call('HSET', deleted_buckets_key(tp), b.name, cjson.encode({id = b.id, history = b.history,
  ttl = b.ttl, max_value_size = b.maxv, description = dm[1] or '', deleted_at = server_ms(),
  rev = rev, feed_expires = feed_expires}))
redis.call('PEXPIRE', deleted_buckets_key(tp), tonumber(ARGV[H + 2]))
retire_versions(tp, b)
redis.call('DEL', b.bkey)
redis.call('ZREM', buckets_key(tp), b.name)
redis.call('ZREM', ttl_buckets_key(tp), b.name)
-- Everything a purge has to visit: keys, histories of deleted keys, tag indexes.
local pending = keys + redis.call('ZCARD', deleted_keys_key(tp, b.id)) + redis.call('SCARD', tag_registry_key(tp, b.id))
if b.search or b.sdrop then
  pending = pending + redis.call('ZCARD', search_terms_key(tp, b.id))  -- its search posting lists
  redis.call('ZREM', search_buckets_key(tp), b.name)
end
if pending <= tonumber(ARGV[H + 1]) then
  purge_bucket_keys(tp, b.id, pending + 1)
  return {'OK', rev, 1, held_at}
end
redis.call('RPUSH', trash_key(tp), b.id)
return {'OK', rev, 0, held_at}
