-- include: _kv_lib
-- include: _audit_lib
-- Create or update one key. KEYS[1] bucket hash (routes the script to the tenant's slot).
-- ARGV[1..H] the common header (_kv_lib), then:
--   ARGV[H+1] key  ARGV[H+2] value (JSON text)  ARGV[H+3] encoding  ARGV[H+4] ttl ms|''|'0'
--   ARGV[H+5] tags JSON|''  ARGV[H+6] mode  ARGV[H+7] expected version|''  ARGV[H+8] if-none-match '1'|''
--   ARGV[H+9 ...] (optional) the request's audit event, recorded with a successful write
--                 (audit_request in _audit_lib.lua): status 201 when it created the key, else 200
-- Returns put_entry's reply followed by the held-bytes release time to schedule ('' = none).
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history, cfg.default_ttl)
if not b then return {'E', 'bucket_not_found', ''} end
local now = server_ms()
local res = put_entry(cfg, b, ARGV[H + 1], ARGV[H + 2], ARGV[H + 3], ARGV[H + 4], ARGV[H + 5], ARGV[H + 6],
                      ARGV[H + 7], ARGV[H + 8], now)
if res[1] == 'OK' then
  res[#res + 1] = cfg.held_at or ''
  if ARGV[H + 9] then audit_request(cfg.tp, H + 9, now, res[7] == 1 and '201' or '200') end
end
return res
