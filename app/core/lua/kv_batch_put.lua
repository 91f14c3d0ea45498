-- include: _kv_lib
-- Upsert many keys, all or nothing. KEYS[1] bucket hash. ARGV[1..6] header, then 5 fields per
-- item: key, value, encoding, ttl ms|''|'0', tags JSON|''.
-- Every check runs before the first write, so a refused batch changes nothing.
-- Returns {'OK', schedule 1|0, {item results...}} or {'E', code, detail, item index (0-based)}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history)
if not b then return {'E', 'bucket_not_found', '', '0'} end
local now = server_ms()
local n = (#ARGV - 6) / 5
if b.maxv > 0 then
  for i = 0, n - 1 do
    if #ARGV[6 + i * 5 + 2] > b.maxv then return {'E', 'value_too_large', tostring(b.maxv), tostring(i)} end
  end
end
local results, schedule = {}, 0
for i = 0, n - 1 do
  local base = 6 + i * 5
  local res = put_entry(cfg, b, ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5],
                        'put', '', '', now)
  if res[8] == 1 then schedule = 1 end
  results[#results + 1] = {res[2], res[3], res[4], res[5], res[6], res[7], res[9]}
end
return {'OK', schedule, results}
