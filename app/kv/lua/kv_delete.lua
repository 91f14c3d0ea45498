-- include: _kv_lib
-- Delete one key. KEYS[1] bucket hash. ARGV[1..H] header, ARGV[H+1] key, ARGV[H+2] expected version|''
-- Returns {'OK', revision, version, held-bytes release time to schedule|''} or {'E', code, detail}.
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, false)
if not b then
  if cfg.bucket == 'default' then return {'E', 'key_not_found', ''} end
  return {'E', 'bucket_not_found', ''}
end
local res = delete_entry(cfg, b, ARGV[H + 1], ARGV[H + 2], server_ms())
if res[1] == 'OK' then res[#res + 1] = cfg.held_at or '' end
return res
