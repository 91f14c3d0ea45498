-- include: _kv_lib
-- One page of a bucket's live keys in key order (read-only). KEYS[1] bucket hash.
-- ARGV[1] tenant prefix  ARGV[2] bucket  ARGV[3] 'cursor' | 'page'
-- ARGV[4] cursor key (exclusive, '' = from the start) or page offset  ARGV[5] limit
-- ARGV[6] prefix ('' = all)  ARGV[7] '1' = compute total  ARGV[8..] tag filters '<tag>=<value>'
-- Cost: O(log N + page + skipped + expired), where skipped are expired or filtered-out keys in the range
-- and expired the keys whose expiry passed but that no sweep has removed yet;
-- with tag filters the scan runs over the smallest tag index, never over the whole bucket.
-- Returns {'OK', total|-1, next_cursor|'', {key, v, enc, ver, rev, c, u, x, tags, ...}, now}.
local tp, name, mode, start = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, prefix, want_total = tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1'
local id = redis.call('HGET', bucket_key(tp, name), 'id')
if not id then
  if name ~= 'default' then return {'E', 'bucket_not_found', ''} end
  return {'OK', 0, '', {}, 0}
end
local now = server_ms()
local idx = key_index_key(tp, id)
local lo, hi = '-', '+'
if prefix ~= '' then lo, hi = '[' .. prefix, '[' .. prefix .. '\255' end

local src, others = idx, {}
if #ARGV >= 8 then
  local best, best_n
  for i = 8, #ARGV do
    local n = redis.call('ZCARD', tag_index_key(tp, id, ARGV[i]))
    if not best_n or n < best_n then best, best_n = i, n end
  end
  src = tag_index_key(tp, id, ARGV[best])
  for i = 8, #ARGV do
    if i ~= best then others[#others + 1] = tag_index_key(tp, id, ARGV[i]) end
  end
end

local function live_entry(key)
  for _, tk in ipairs(others) do
    if not redis.call('ZSCORE', tk, key) then return nil end
  end
  local cur = redis.call('HMGET', entry_key(tp, id, key), unpack(ENTRY_FIELDS))
  if not cur[3] or is_expired(cur, now) then return nil end
  return cur
end

-- Walks src from `from` (a ZRANGEBYLEX bound), calling visit(key, entry) for each live match
-- until visit returns true or the range ends.
local function walk(from, visit)
  local batch = math.max(limit + 1, 64)
  while true do
    local ks = redis.call('ZRANGEBYLEX', src, from, hi, 'LIMIT', 0, batch)
    for _, k in ipairs(ks) do
      local cur = live_entry(k)
      if cur and visit(k, cur) then return end
    end
    if #ks < batch then return end
    from = '(' .. ks[#ks]
  end
end

-- Keys of the prefix range that expired but are not swept yet: O(expired), read once.
local expired_keys
local function expired_in_range()
  if not expired_keys then
    expired_keys = {}
    for _, k in ipairs(redis.call('ZRANGEBYSCORE', ttl_index_key(tp, id), '-inf', now)) do
      if prefix == '' or string.sub(k, 1, #prefix) == prefix then expired_keys[#expired_keys + 1] = k end
    end
  end
  return expired_keys
end

local total = -1
if want_total then
  if src == idx and prefix == '' then
    total = redis.call('ZCARD', idx) - redis.call('ZCOUNT', ttl_index_key(tp, id), '-inf', now)
  elseif src == idx then
    total = redis.call('ZLEXCOUNT', idx, lo, hi) - #expired_in_range()
  else
    total = 0
    walk(lo, function() total = total + 1 return false end)
  end
end

-- a < b in byte order, the order of ZRANGEBYLEX. Lua's < is strcoll() in the server's
-- LC_COLLATE locale: byte order in the C locales (the probe below), not in natural-language
-- locales, which sort 'a' before 'B'; there the bytes are compared one by one.
local native_byte_order = ('B' < 'a') and ('a-b' < 'a0') and ('Z' < '_') and ('a' < 'a0')
local function byte_less(a, b)
  if native_byte_order then return a < b end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local from = lo
local skip = 0
if mode == 'cursor' then
  if start ~= '' and (prefix == '' or not byte_less(start, prefix)) then from = '(' .. start end
else
  skip = tonumber(start)
  if src == idx and skip > 0 then
    -- Jump by rank instead of walking the skipped keys: O(log N), plus O(expired) string
    -- comparisons when unswept expired keys are in the range. The last skipped live key lies one
    -- rank further for each expired key at or before it: iterate to that fixed point (it moves
    -- only past expired keys, so two or three passes).
    local base = 0
    if prefix ~= '' then base = redis.call('ZLEXCOUNT', idx, '-', '(' .. prefix) end
    local target = base + skip - 1
    local expired = expired_in_range()
    local counted = 0
    while #expired > 0 do
      local at = redis.call('ZRANGE', idx, target, target)[1]
      if not at then break end
      local n = 0
      for _, k in ipairs(expired) do
        if not byte_less(at, k) then n = n + 1 end
      end
      if n == counted then break end
      target, counted = target + n - counted, n
    end
    local at = redis.call('ZRANGE', idx, target, target)
    if #at == 0 then return {'OK', total, '', {}, now} end
    if prefix ~= '' and string.sub(at[1], 1, #prefix) ~= prefix then return {'OK', total, '', {}, now} end
    from, skip = '(' .. at[1], 0
  end
end

local out, keys_out = {}, {}
walk(from, function(k, cur)
  if skip > 0 then skip = skip - 1 return false end
  keys_out[#keys_out + 1] = k
  if #keys_out > limit then return true end
  out[#out + 1] = k
  for j = 1, 8 do out[#out + 1] = cur[j] or '' end
  return false
end)
local next_cursor = ''
if #keys_out > limit then next_cursor = keys_out[limit] end
return {'OK', total, next_cursor, out, now}
