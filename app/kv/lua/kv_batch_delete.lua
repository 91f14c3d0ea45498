-- include: _kv_lib
-- Delete many keys at once. KEYS[1] bucket hash. ARGV[1..H] header, ARGV[H+1..] keys.
-- Returns {'OK', {1|0 per key: deleted or not there}, held-bytes release time to schedule|''}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, false)
local out = {}
if not b then
  if cfg.bucket ~= 'default' then return {'E', 'bucket_not_found', ''} end
  for i = H + 1, #ARGV do out[#out + 1] = 0 end
  return {'OK', out, ''}
end
local now = server_ms()
for i = H + 1, #ARGV do
  local res = delete_entry(cfg, b, ARGV[i], '', now)
  out[#out + 1] = (res[1] == 'OK') and 1 or 0
end
return {'OK', out, cfg.held_at or ''}
