-- include: _kv_lib
-- Create or update one key. KEYS[1] bucket hash (routes the script to the tenant's slot).
-- ARGV[1..6] the common header (_kv_lib), then:
--   ARGV[7] key  ARGV[8] value (JSON text)  ARGV[9] encoding  ARGV[10] ttl ms|''|'0'
--   ARGV[11] tags JSON|''  ARGV[12] mode  ARGV[13] expected version|''  ARGV[14] if-none-match '1'|''
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history)
if not b then return {'E', 'bucket_not_found', ''} end
return put_entry(cfg, b, ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], server_ms())
