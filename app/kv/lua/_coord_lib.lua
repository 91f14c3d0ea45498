-- Coordination helpers (counters, touch, transactions, leases), included after _kv_lib: every
-- change they make goes through _kv_lib's put_entry / delete_entry / remove_entry, so it gets its
-- history, change-feed event and quota accounting exactly as a single write does.

-- Signed 64-bit integers as decimal text (Lua numbers are doubles: exact only to 2^53).
local INT64_MAX = '9223372036854775807'
local INT64_MIN_ABS = '9223372036854775808'

-- -1, 0, 1: magnitudes (digit strings without leading zeros) compared by value.
local function mag_cmp(a, b)
  if #a ~= #b then if #a < #b then return -1 end return 1 end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then if x < y then return -1 end return 1 end
  end
  return 0
end

local function strip_zeros(s)
  s = string.gsub(s, '^0+', '')
  if s == '' then return '0' end
  return s
end

local function mag_add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48 end
    if j > 0 then d = d + string.byte(b, j) - 48 end
    out[#out + 1] = string.char(48 + d % 10)
    carry = math.floor(d / 10)
    i, j = i - 1, j - 1
  end
  return strip_zeros(string.reverse(table.concat(out)))
end

-- a - b for magnitudes a >= b.
local function mag_sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = string.byte(a, i) - 48 - borrow
    if j > 0 then d = d - (string.byte(b, j) - 48) end
    if d < 0 then d, borrow = d + 10, 1 else borrow = 0 end
    out[#out + 1] = string.char(48 + d)
    i, j = i - 1, j - 1
  end
  return strip_zeros(string.reverse(table.concat(out)))
end

-- The canonical JSON integer text `s` as (negative, magnitude), or nil when it is none.
local function parse_int(s)
  if s == '0' then return false, '0' end
  local sign, digits = string.match(s, '^(%-?)([1-9]%d*)$')
  if not digits or #digits > 19 then return nil end
  return sign == '-', digits
end

-- a + b for canonical integer texts; nil when the sum leaves the signed 64-bit range.
local function int64_add(a, b)
  local an, am = parse_int(a)
  local bn, bm = parse_int(b)
  local neg, mag
  if an == bn then
    neg, mag = an, mag_add(am, bm)
  elseif mag_cmp(am, bm) >= 0 then
    neg, mag = an, mag_sub(am, bm)
  else
    neg, mag = bn, mag_sub(bm, am)
  end
  if mag == '0' then return '0' end
  if neg then
    if mag_cmp(mag, INT64_MIN_ABS) > 0 then return nil end
    return '-' .. mag
  end
  if mag_cmp(mag, INT64_MAX) > 0 then return nil end
  return mag
end

-- Adds `by` (canonical integer text) to the key's integer value (0 when the key is absent or
-- expired) and writes the sum with put_entry. Returns put_entry's reply with the new value text
-- appended, or {'E', 'not_an_integer'|'counter_overflow'|..., detail}.
local function increment_entry(cfg, b, key, by, ttl_ms, now)
  local cur = read_entry(cfg.tp, b, key)
  local current = '0'
  if cur and not is_expired(cur, now) then
    if (cur[2] and cur[2] ~= '') or parse_int(cur[1]) == nil then
      return {'E', 'not_an_integer', string.sub(cur[1], 1, 40)}
    end
    current = cur[1]
  end
  local sum = int64_add(current, by)
  if not sum then return {'E', 'counter_overflow', current} end
  local res = put_entry(cfg, b, key, sum, '', ttl_ms, '', 'put', '', '', now)
  if res[1] == 'OK' then res[#res + 1] = sum end
  return res
end

-- How long the set of a lease's keys outlives the lease: the TTL sweep that meets the first of its
-- expired keys removes the others with it (expire_lease_keys), then drops the set.
local LEASE_KEYS_GRACE_MS = 86400000

-- The live lease `id` of the tenant: its expiry (ms), or nil when it is unknown or has expired.
local function lease_expiry(tp, id, now)
  local x = tonumber(redis.call('HGET', lease_key(tp, id), 'x'))
  if not x or x <= now then return nil end
  return x
end

-- Marks a key just written (with the lease's expiry `x` as its own) as attached to lease `id`;
-- `previous` is the lease it was attached to before the write (false: none).
local function attach_lease(tp, b, key, id, x, previous)
  if previous and previous ~= id then redis.call('SREM', lease_keys_key(tp, previous), b.name .. '/' .. key) end
  redis.call('HSET', entry_key(tp, b.id, key), 'lease', id)
  local lk = lease_keys_key(tp, id)
  redis.call('SADD', lk, b.name .. '/' .. key)
  redis.call('PEXPIREAT', lk, x + LEASE_KEYS_GRACE_MS)
end

-- {'E', ...} when lease `id` cannot take `key` of bucket `b` (unknown, expired, or full), else nil
-- and the lease's expiry.
local function check_lease(tp, b, key, id, max_keys, now)
  local x = lease_expiry(tp, id, now)
  if not x then return {'E', 'lease_not_found', id} end
  local lk = lease_keys_key(tp, id)
  if redis.call('SISMEMBER', lk, b.name .. '/' .. key) == 0 and redis.call('SCARD', lk) >= max_keys then
    return {'E', 'too_many_lease_keys', id}
  end
  return nil, x
end

-- Sets (ttl_ms > 0) or removes ('0') a live key's expiry without a new version, history record or
-- event. Returns {'OK', entry fields, schedule 1|0} or {'E', code, detail}.
local function touch_entry(cfg, b, key, ttl_ms, now)
  local tp = cfg.tp
  local ek = entry_key(tp, b.id, key)
  local cur = redis.call('HMGET', ek, 'v', 'enc', 'ver', 'rev', 'c', 'u', 'x', 'tags', 'lease')
  if not cur[3] or is_expired(cur, now) then return {'E', 'key_not_found', ''} end
  if cur[9] then return {'E', 'lease_attached', cur[9]} end
  local schedule = 0
  if ttl_ms == '0' then
    if cur[7] then
      redis.call('HDEL', ek, 'x')
      redis.call('ZREM', ttl_index_key(tp, b.id), key)
    end
    cur[7] = ''
  else
    local x = now + tonumber(ttl_ms)
    redis.call('HSET', ek, 'x', x)
    schedule = index_expiry(tp, b, key, x)
    cur[7] = tostring(x)
  end
  local fields = {}
  for j = 1, 8 do fields[j] = cur[j] or '' end
  return {'OK', fields, schedule}
end

-- Deep equality of two JSON texts (object members in any order).
local function json_equal(a, b)
  if a == b then return true end
  local ok1, x = pcall(cjson.decode, a)
  local ok2, y = pcall(cjson.decode, b)
  if not (ok1 and ok2) then return false end
  local function eq(p, q)
    if type(p) ~= type(q) then return false end
    if type(p) ~= 'table' then return p == q end
    for k, v in pairs(p) do
      if q[k] == nil or not eq(v, q[k]) then return false end
    end
    for k in pairs(q) do
      if p[k] == nil then return false end
    end
    return true
  end
  return eq(x, y)
end

-- The TTL sweep removed an expired key attached to lease `id`: when the lease has ended, every
-- other key still attached to it is removed in this same step (an `expire` event each; they share
-- the lease's expiry), appended to `out` as the sweep reports them. Returns how many it removed.
-- `buckets` (name -> bucket) are the buckets the sweep holds: one table per bucket, so that the
-- feed bytes each keeps (b.fb) stay current.
local function expire_lease_keys(cfg, id, now, out, buckets)
  local tp = cfg.tp
  if lease_expiry(tp, id, now) then return 0 end  -- the key had an expiry of its own; the lease lives
  local lk = lease_keys_key(tp, id)
  local removed = 0
  for _, member in ipairs(redis.call('SMEMBERS', lk)) do
    local name, key = string.match(member, '^([^/]+)/(.*)$')
    local b = buckets[name]
    if b == nil then b = load_bucket(tp, name, false) or false; buckets[name] = b end
    if b then
      local cur = read_entry(tp, b, key)
      if cur and cur[11] == id then
        local res = remove_entry(cfg, b, key, cur, 'expire', now)
        out[#out + 1] = name; out[#out + 1] = key; out[#out + 1] = res[2]; out[#out + 1] = res[1]
        removed = removed + 1
      end
    end
  end
  redis.call('DEL', lk)
  return removed
end
