-- include: _kv_lib
-- One page of a bucket's live keys in key order (read-only). KEYS[1] bucket hash.
-- ARGV[1] tenant prefix  ARGV[2] bucket  ARGV[3] 'cursor' | 'page', with '-meta' appended: without
-- the values (metadata only; '' in their place), so a page costs O(page) whatever their size
-- ARGV[4] cursor key (exclusive, '' = from the start) or page offset  ARGV[5] limit
-- ARGV[6] prefix ('' = all)  ARGV[7] '1' = compute total  ARGV[8..] tag filters '<tag>=<value>'
-- The keys come from the bucket's key index or, with tag filters, from the smallest tag index
-- (both sorted sets in lex order), never from a scan of the bucket. Cost:
--   cursor page: O(log N + page + expired keys met on the way)
--   total, page number (offset), with no or one tag filter: O(log N + E), by rank arithmetic
--   total, page number with two or more tag filters: O(matches of the smallest tag index)
-- where E is the expired keys of the range that no sweep has removed yet.
-- Returns {'OK', total|-1, next_cursor|'', {key, v, enc, ver, rev, c, u, x, tags, ...}, now}.
local tp, name, mode, start = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, prefix, want_total = tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1'
local fields = ENTRY_FIELDS
if string.sub(mode, -5) == '-meta' then
  -- '-' is no field of an entry: HMGET answers nil for it without touching the value.
  mode, fields = string.sub(mode, 1, -6), {'-', 'enc', 'ver', 'rev', 'c', 'u', 'x', 'tags'}
end
local id = redis.call('HGET', bucket_key(tp, name), 'id')
if not id then
  if name ~= 'default' then return {'E', 'bucket_not_found', ''} end
  return {'OK', 0, '', {}, 0}
end
local now = server_ms()
local idx = key_index_key(tp, id)
local ttl_idx = ttl_index_key(tp, id)
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

-- The keys of src in the prefix range whose expiry passed but that no sweep removed yet: from
-- the TTL index, whose scores are the entries' expiries. Read once, O(E).
local src_expired, expired_set
local function expired_in_src()
  if not src_expired then
    src_expired, expired_set = {}, {}
    for _, k in ipairs(redis.call('ZRANGEBYSCORE', ttl_idx, '-inf', now)) do
      if (prefix == '' or string.sub(k, 1, #prefix) == prefix)
          and (src == idx or redis.call('ZSCORE', src, k)) then
        src_expired[#src_expired + 1] = k
        expired_set[k] = true
      end
    end
  end
  return src_expired
end

local function in_other_tags(key)
  for _, tk in ipairs(others) do
    if not redis.call('ZSCORE', tk, key) then return false end
  end
  return true
end

-- The entry of a key that matches every filter and is live; else nil, and true when it expired.
local function live_entry(key)
  if not in_other_tags(key) then return nil end
  local cur = redis.call('HMGET', entry_key(tp, id, key), unpack(fields))
  if not cur[3] then return nil end
  if is_expired(cur, now) then return nil, true end
  return cur
end

-- Walks src from `from` (a ZRANGEBYLEX bound), calling visit(key, entry) for each live match
-- until visit returns true or the range ends. `cheap` walks test matches without reading the
-- entries (tag indexes and the expired set only) and pass no entry. A walk that meets a pile
-- of expired keys reads the expired set once and skips the rest of the pile without reads.
local EXPIRED_BEFORE_SET = 32
local met_expired = 0
local function walk(from, visit, cheap)
  local batch = math.max(limit + 1, 64)
  if cheap then expired_in_src() end
  while true do
    local ks = redis.call('ZRANGEBYLEX', src, from, hi, 'LIMIT', 0, batch)
    for _, k in ipairs(ks) do
      if cheap then
        if not expired_set[k] and in_other_tags(k) and visit(k) then return end
      elseif not (expired_set and expired_set[k]) then
        local cur, expired = live_entry(k)
        if cur then
          if visit(k, cur) then return end
        elseif expired then
          met_expired = met_expired + 1
          if met_expired == EXPIRED_BEFORE_SET then expired_in_src() end
        end
      end
    end
    if #ks < batch then return end
    from = '(' .. ks[#ks]
  end
end

local total = -1
if want_total then
  if #others > 0 then
    total = 0
    walk(lo, function() total = total + 1 return false end, true)
  elseif src == idx and prefix == '' then
    total = redis.call('ZCARD', idx) - redis.call('ZCOUNT', ttl_idx, '-inf', now)
  else
    total = redis.call('ZLEXCOUNT', src, lo, hi) - #expired_in_src()
  end
end

local from = lo
if mode == 'cursor' then
  if start ~= '' and (prefix == '' or not byte_less(start, prefix)) then from = '(' .. start end
else
  local offset = tonumber(start)
  local last_skipped
  if offset > 0 and #others > 0 then
    local skip = offset
    walk(lo, function(k)
      skip = skip - 1
      if skip == 0 then last_skipped = k return true end
      return false
    end, true)
  elseif offset > 0 then
    -- Jump by rank instead of walking the skipped keys. The last skipped live key lies one rank
    -- further for each expired key at or before it: iterate to that fixed point (it moves only
    -- past expired keys, so two or three passes over the expired keys of the range).
    local base = 0
    if prefix ~= '' then base = redis.call('ZLEXCOUNT', src, '-', '(' .. prefix) end
    local target = base + offset - 1
    local expired = expired_in_src()
    local counted = 0
    while #expired > 0 do
      local at = redis.call('ZRANGE', src, target, target)[1]
      if not at then break end
      local n = 0
      for _, k in ipairs(expired) do
        if not byte_less(at, k) then n = n + 1 end
      end
      if n == counted then break end
      target, counted = target + n - counted, n
    end
    last_skipped = redis.call('ZRANGE', src, target, target)[1]
    if last_skipped and prefix ~= '' and string.sub(last_skipped, 1, #prefix) ~= prefix then last_skipped = nil end
  end
  if offset > 0 then
    if not last_skipped then return {'OK', total, '', {}, now} end
    from = '(' .. last_skipped
  end
end

local out, n_out, more = {}, 0, false
walk(from, function(k, cur)
  if n_out == limit then more = true return true end
  n_out = n_out + 1
  out[#out + 1] = k
  for j = 1, 8 do out[#out + 1] = cur[j] or '' end
  return false
end)
local next_cursor = ''
if more then next_cursor = out[#out - 8] end
return {'OK', total, next_cursor, out, now}
