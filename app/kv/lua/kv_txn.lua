-- include: _kv_lib
-- include: _coord_lib
-- A transaction: compares, then the operations of the branch they choose (success when all hold,
-- else failure), all in this one atomic step over any buckets of the tenant (one cluster slot).
-- Every change goes through put_entry / delete_entry, so it gets its history, change event and
-- quota accounting as if written alone; every check of the chosen branch (buckets, value sizes,
-- quotas, leases, patch bases) runs before its first write, so a refused branch changes nothing.
-- KEYS[1] the tenant's bucket set (routes the script to the tenant's slot).
-- ARGV[1..H] the common header (ARGV[2] unused), ARGV[H+1] compares, ARGV[H+2] success operations,
-- ARGV[H+3] failure operations, ARGV[H+4] the most keys a lease holds, then
--   5 fields per compare: bucket, key, target (version|revision|exists|value), op (= != < >),
--     operand (an integer; '1'/'0' for exists; JSON text for value)
--   9 fields per operation: op (put|delete|get|patch), bucket, key, value JSON (the merged value of
--     a patch), encoding, ttl ms|''|'0', tags JSON|'', patch base version ('' or the version the
--     value was merged from, 0 = absent), lease id|''
-- Returns {'OK', succeeded 1|0, {result per operation}, earliest new expiry|'', held-bytes time|''}
--   put/patch: {op, version, revision, created, updated, expires|'', created 1|0, tags}
--   delete: {op, deleted 1|0, revision|0}   get: {op, {v, enc, ver, rev, c, u, x, tags} or 0}
-- or {'E', code, detail, operation index (failure operations count after the success ones)}; 'stale' = a patch base moved (the caller merges again).
local cfg = read_config()
local tp = cfg.tp
local now = server_ms()
local nc, ns, nf = tonumber(ARGV[H + 1]), tonumber(ARGV[H + 2]), tonumber(ARGV[H + 3])
local max_lease_keys = tonumber(ARGV[H + 4])
local base = H + 4

local buckets = {}
local function bucket(name, create)
  local b = buckets[name]
  if b == nil or (b == false and create) then
    b = load_bucket(tp, name, create, cfg.default_history, cfg.default_ttl) or false
    buckets[name] = b
  end
  return b
end

local function live(b, key)
  if not b then return nil end
  local cur = read_entry(tp, b, key)
  if cur and is_expired(cur, now) then return nil end
  return cur
end

local function holds(n, op, m)
  if op == '=' then return n == m end
  if op == '!=' then return n ~= m end
  if op == '<' then return n < m end
  return n > m
end

local succeeded = true
for i = 0, nc - 1 do
  local p = base + i * 5
  local cur = live(bucket(ARGV[p + 1], false), ARGV[p + 2])
  local target, op, operand = ARGV[p + 3], ARGV[p + 4], ARGV[p + 5]
  local ok
  if target == 'exists' then
    ok = (cur ~= nil) == (operand == '1')
  elseif target == 'value' then
    local eq = cur ~= nil and (cur[2] or '') == '' and json_equal(cur[1], operand)
    ok = (op == '=') == eq
  else
    local n = 0
    if cur then
      if target == 'version' then n = tonumber(cur[3]) else n = tonumber(cur[4]) end
    end
    ok = holds(n, op, tonumber(operand))
  end
  if not ok then succeeded = false break end
end

local first, n, off = base + nc * 5, ns, 0
if not succeeded then first, n, off = base + nc * 5 + ns * 9, nf, ns end

-- Checks of the chosen branch, before its first write.
local new_keys, new_bytes = 0, 0
for i = 0, n - 1 do
  local p = first + i * 9
  local op, bname, key = ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
  if op == 'put' or op == 'patch' then
    local b = bucket(bname, true)
    if not b then return {'E', 'bucket_not_found', bname, tostring(off + i)} end
    local value = ARGV[p + 4]
    if b.maxv > 0 and #value > b.maxv then return {'E', 'value_too_large', tostring(b.maxv), tostring(off + i)} end
    local cur = live(b, key)
    if op == 'patch' then
      local have = 0
      if cur then have = tonumber(cur[3]) end
      if have ~= tonumber(ARGV[p + 8]) then return {'E', 'stale', tostring(have), tostring(off + i)} end
      if not cur then return {'E', 'key_not_found', '', tostring(off + i)} end
    end
    if ARGV[p + 9] ~= '' then
      local refused = check_lease(tp, b, key, ARGV[p + 9], max_lease_keys, now)
      if refused then refused[4] = tostring(off + i) return refused end
    end
    if cur then new_bytes = new_bytes + #value - #cur[1]
    else new_keys, new_bytes = new_keys + 1, new_bytes + #key + #value end
    if b.search then  -- the index bytes count as put_entry counts them (it skips its own check here)
      local stags = ARGV[p + 7]
      if stags == '' then stags = (cur and cur[8]) or '{}' end
      new_bytes = new_bytes + search_prepare(tp, b, key, value, ARGV[p + 5], stags, cur ~= nil).delta
    end
  elseif not bucket(bname, false) and bname ~= 'default' then
    return {'E', 'bucket_not_found', bname, tostring(off + i)}
  end
end
local over = check_kv_quota(cfg, new_keys, new_bytes)
if over then return over end
cfg.skip_quota = true  -- checked for the whole branch above
begin_room(cfg, new_bytes)

local results, earliest = {}, nil
for i = 0, n - 1 do
  local p = first + i * 9
  local op, bname, key = ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
  local b = buckets[bname]
  if op == 'put' or op == 'patch' then
    local ttl, lease, previous, x = ARGV[p + 6], ARGV[p + 9], false, nil
    if lease ~= '' then
      x = lease_expiry(tp, lease, now)
      ttl = tostring(x - now)
      previous = redis.call('HGET', entry_key(tp, b.id, key), 'lease')
    end
    local res = put_entry(cfg, b, key, ARGV[p + 4], ARGV[p + 5], ttl, ARGV[p + 7], 'put', '', '', now)
    if res[1] ~= 'OK' then res[4] = tostring(off + i) return res end  -- checked above: never happens
    if lease ~= '' then attach_lease(tp, b, key, lease, x, previous) end
    if res[8] == 1 and (not earliest or res[6] < earliest) then earliest = res[6] end
    results[#results + 1] = {op, res[2], res[3], res[4], res[5], res[6], res[7], res[9]}
  elseif op == 'delete' then
    local deleted, rev = 0, 0
    if b then
      local res = delete_entry(cfg, b, key, '', now)
      if res[1] == 'OK' then deleted, rev = 1, res[2] end
    end
    results[#results + 1] = {op, deleted, rev}
  else
    local found = 0
    if b then
      local cur = redis.call('HMGET', entry_key(tp, b.id, key), unpack(ENTRY_FIELDS))
      if cur[3] and not is_expired(cur, now) then
        for j = 1, 8 do if not cur[j] then cur[j] = '' end end
        found = cur
      end
    end
    results[#results + 1] = {op, found}
  end
end
return {'OK', succeeded and 1 or 0, results, earliest or '', cfg.held_at or ''}
