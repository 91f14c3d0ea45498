-- include: _kv_lib
-- One step of turning a bucket's full-text search on or off (see _search_lib.lua): up to
-- ARGV[H+2] keys, in key order after the bucket's `scursor`, so a large bucket never holds Redis
-- for long. The caller repeats it until it answers 0 left.
-- KEYS[1] bucket hash. ARGV[1..H] header, ARGV[H+1] '1' on | '0' off, ARGV[H+2] keys per step.
-- The bucket's `search` field: '1' on, 'b' being built (writes index themselves; the step indexes
-- the keys that have no term list yet), 'd' being dropped (writes take their key out of the index;
-- the step does it for the keys that still have one), absent off. A search of a bucket being built
-- is refused; one being dropped is off. Turning it the other way mid-step starts over from the first key.
-- On: each step's index bytes must fit the tenant's max_kv_bytes (else that step changes nothing and
-- the bucket stays 'b': send it on again, or turn search off).
-- Returns {'OK', 1 = more to do | 0 = done} or {'E', 'bucket_not_found' | 'quota_exceeded', detail}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history, cfg.default_ttl)
if not b then return {'E', 'bucket_not_found', ''} end
local tp = cfg.tp
local on = ARGV[H + 1] == '1'
local step = tonumber(ARGV[H + 2])
local state = redis.call('HGET', b.bkey, 'search') or ''
if (on and state == '1') or (not on and state == '') then return {'OK', 0} end
local target = on and 'b' or 'd'
if state ~= target then
  redis.call('HSET', b.bkey, 'search', target, 'scursor', '')
  redis.call('ZREM', search_buckets_key(tp), b.name)
end
local cursor = redis.call('HGET', b.bkey, 'scursor') or ''
local lo = '-'
if cursor ~= '' then lo = '(' .. cursor end
local keys = redis.call('ZRANGEBYLEX', key_index_key(tp, b.id), lo, '+', 'LIMIT', 0, step)
if on then
  local prepared, total = {}, 0
  for i, key in ipairs(keys) do
    local m = redis.call('HMGET', entry_key(tp, b.id, key), 'v', 'enc', 'tags', 's')
    if m[1] and not m[4] then
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
else
  local freed = 0
  for _, key in ipairs(keys) do
    local f = search_unindex(tp, b, key)
    if f > 0 then
      redis.call('HDEL', entry_key(tp, b.id, key), 's')
      freed = freed + f
    end
  end
  account(tp, b, 0, 0 - freed)
end
if #keys >= step then
  redis.call('HSET', b.bkey, 'scursor', keys[#keys])
  return {'OK', 1}
end
if on then
  redis.call('HSET', b.bkey, 'search', 1)
  redis.call('ZADD', search_buckets_key(tp), 0, b.name)
else
  -- Every key is out of the index: what is left is empty (posting lists of no entry, if any).
  if search_purge_terms(tp, b.id, step) > 0 then
    redis.call('HSET', b.bkey, 'scursor', '\255')
    return {'OK', 1}
  end
  local left = tonumber(redis.call('HGET', b.bkey, 'sbytes')) or 0
  if left ~= 0 then account(tp, b, 0, 0 - left) end
  redis.call('HDEL', b.bkey, 'search', 'sdocs', 'slen', 'sbytes')
end
redis.call('HDEL', b.bkey, 'scursor')
return {'OK', 0}
