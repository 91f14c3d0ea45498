-- include: _kv_lib
-- Upsert many keys, all or nothing. KEYS[1] bucket hash. ARGV[1..H] header, then 5 fields per
-- item: key, value, encoding, ttl ms|''|'0', tags JSON|''.
-- Every check (value size, quota) runs before the first write, so a refused batch changes nothing.
-- Past revisions are kept as far as they fit once the batch's values are written (see _kv_lib).
-- Returns {'OK', schedule 1|0, {item results...}, held-bytes release time to schedule|''}
-- or {'E', code, detail, item index (0-based)}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history, cfg.default_ttl)
if not b then return {'E', 'bucket_not_found', '', '0'} end
local now = server_ms()
local n = (#ARGV - H) / 5

-- Pre-pass: sizes, and what the batch adds to the quota (later items may overwrite earlier ones).
local seen, new_keys, new_bytes = {}, 0, 0
for i = 0, n - 1 do
  local key, value = ARGV[H + i * 5 + 1], ARGV[H + i * 5 + 2]
  if b.maxv > 0 and #value > b.maxv then return {'E', 'value_too_large', tostring(b.maxv), tostring(i)} end
  local old = seen[key]
  local cur = nil
  if old == nil then
    cur = read_entry(cfg.tp, b, key)
    if cur and not is_expired(cur, now) then old = #cur[1] else old = false; cur = nil end
  end
  if old then new_bytes = new_bytes + #value - old
  else new_keys, new_bytes = new_keys + 1, new_bytes + #key + #value end
  if b.search and seen[key] == nil then  -- its search index (a key named twice: its first item's)
    local tags = ARGV[H + i * 5 + 5]
    if tags == '' then tags = (cur and cur[8]) or '{}' end
    new_bytes = new_bytes + search_prepare(cfg.tp, b, key, value, ARGV[H + i * 5 + 3], tags, cur ~= nil).delta
  end
  seen[key] = #value
end
local over = check_kv_quota(cfg, new_keys, new_bytes)
if over then over[4] = '0' return over end
cfg.skip_quota = true  -- checked for the whole batch above
begin_room(cfg, new_bytes)

local results, schedule = {}, 0
for i = 0, n - 1 do
  local base = H + i * 5
  local res = put_entry(cfg, b, ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5],
                        'put', '', '', now)
  if res[8] == 1 then schedule = 1 end
  results[#results + 1] = {res[2], res[3], res[4], res[5], res[6], res[7], res[9]}
end
return {'OK', schedule, results, cfg.held_at or ''}
