-- Shared by the watch scripts: a stream's lease, and the buckets a tenant-wide stream follows.

-- Take a lease on one of the tenant's watch slots (`zkey`: the tenant's watchers sorted set, a KEY
-- of the calling script). Leases of streams whose process died expire and are pruned here, so the count is right
-- across every API process. Returns nil, or a refusal {'E', 'quota_exceeded', detail}.
local function take_watch_lease(zkey, tp, default_limit, stream_id, now_ms, expiry_ms)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now_ms)
  local limit = tonumber(redis.call('HGET', limits_key(tp), 'max_watch_streams') or default_limit)
  local open = redis.call('ZCARD', zkey)
  if limit > 0 and open >= limit then
    return {'E', 'quota_exceeded', 'max_watch_streams ' .. limit .. ' ' .. open}
  end
  redis.call('ZADD', zkey, expiry_ms, stream_id)
  return nil
end

-- Every KV bucket of the tenant (or only `names`, when given): a flat list of
-- name, bucket id, revision, id of its first feed entry ('' when the feed is empty).
local function watched_buckets(tp, names)
  names = names or redis.call('ZRANGE', buckets_key(tp), 0, -1)
  local out = {}
  for _, name in ipairs(names) do
    local meta = redis.call('HMGET', bucket_key(tp, name), 'id', 'rev')
    if meta[1] then
      local first = redis.call('XRANGE', feed_key(tp, meta[1]), '-', '+', 'COUNT', 1)
      out[#out + 1] = name
      out[#out + 1] = meta[1]
      out[#out + 1] = meta[2] or '0'
      out[#out + 1] = first[1] and first[1][1] or ''
    end
  end
  return out
end
