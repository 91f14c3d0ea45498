-- include: _kv_lib
-- include: _coord_lib
-- Renew (or remove, '0') a key's expiry without writing a new value: no new version, history record
-- or change event. KEYS[1] bucket hash. ARGV[1..H] header, ARGV[H+1] key, ARGV[H+2] ttl ms|'0'.
-- Returns {'OK', {v, enc, ver, rev, c, u, x, tags}, schedule 1|0, now} or {'E', code, detail}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, false)
if not b then
  if cfg.bucket == 'default' then return {'E', 'key_not_found', ''} end
  return {'E', 'bucket_not_found', ''}
end
local now = server_ms()
local res = touch_entry(cfg, b, ARGV[H + 1], ARGV[H + 2], now)
if res[1] == 'OK' then res[#res + 1] = now end
return res
