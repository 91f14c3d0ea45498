-- include: _kv_lib
-- Turn a bucket's full-text search on or off (see _search_lib.lua), in one atomic step.
-- KEYS[1] bucket hash. ARGV[1..H] header, ARGV[H+1] '1' on | '0' off, ARGV[H+2] the most keys a
-- bucket may hold to be indexed (or have its index dropped) here at once.
-- On: every entry is indexed; the index bytes must fit the tenant's max_kv_bytes (else nothing
-- changes). Off: the index is dropped and its bytes are released.
-- Returns {'OK', changed 1|0} or {'E', 'bucket_not_found' | 'search_too_large' | 'quota_exceeded', detail}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history, cfg.default_ttl)
if not b then return {'E', 'bucket_not_found', ''} end
local on = ARGV[H + 1] == '1'
if on == b.search then return {'OK', 0} end
local tp = cfg.tp
local idx = key_index_key(tp, b.id)
local most = tonumber(ARGV[H + 2])
if redis.call('ZCARD', idx) > most then return {'E', 'search_too_large', tostring(most)} end
local keys = redis.call('ZRANGE', idx, 0, -1)
if on then
  local prepared, total = {}, 0
  for i, key in ipairs(keys) do
    local m = redis.call('HMGET', entry_key(tp, b.id, key), 'v', 'enc', 'tags')
    if m[1] then
      prepared[i] = search_prepare(tp, b, key, m[1], m[2], m[3], false)
      total = total + prepared[i].delta
    end
  end
  local over = check_kv_quota(cfg, 0, total)
  if over then return over end
  for i, key in ipairs(keys) do
    local p = prepared[i]
    if p then
      search_apply(tp, b, key, p)
      redis.call('HSET', entry_key(tp, b.id, key), 's', p.s)
    end
  end
  account(tp, b, 0, total)
  redis.call('HSET', b.bkey, 'search', 1)
  redis.call('ZADD', search_buckets_key(tp), 0, b.name)
else
  local dict = search_terms_key(tp, b.id)
  for _, t in ipairs(redis.call('ZRANGE', dict, 0, -1)) do redis.call('DEL', search_posting_key(tp, b.id, t)) end
  redis.call('DEL', dict)
  for _, key in ipairs(keys) do redis.call('HDEL', entry_key(tp, b.id, key), 's') end
  local sbytes = tonumber(redis.call('HGET', b.bkey, 'sbytes')) or 0
  account(tp, b, 0, 0 - sbytes)
  redis.call('HDEL', b.bkey, 'search', 'sdocs', 'slen', 'sbytes')
  redis.call('ZREM', search_buckets_key(tp), b.name)
end
return {'OK', 1}
