-- include: _kv_lib
-- include: _coord_lib
-- Add to a counter (a key whose value is a JSON integer; a missing key counts from 0), as one write.
-- KEYS[1] bucket hash. ARGV[1..H] the common header (_kv_lib), then ARGV[H+1] key,
-- ARGV[H+2] the amount (canonical integer text), ARGV[H+3] ttl ms|''|'0' (as kv_put).
-- Returns put_entry's reply, the new value text, the held-bytes release time to schedule|''.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history, cfg.default_ttl)
if not b then return {'E', 'bucket_not_found', ''} end
local res = increment_entry(cfg, b, ARGV[H + 1], ARGV[H + 2], ARGV[H + 3], server_ms())
if res[1] == 'OK' then res[#res + 1] = cfg.held_at or '' end
return res
