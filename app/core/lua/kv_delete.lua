-- include: _kv_lib
-- Delete one key. KEYS[1] bucket hash. ARGV[1..6] header, ARGV[7] key, ARGV[8] expected version|''
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, false)
if not b then
  if cfg.bucket == 'default' then return {'E', 'key_not_found', ''} end
  return {'E', 'bucket_not_found', ''}
end
return delete_entry(cfg, b, ARGV[7], ARGV[8], server_ms())
