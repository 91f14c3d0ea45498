-- include: _kv_lib
-- include: _coord_lib
-- Create or update one key attached to a lease: its expiry is the lease's (kept in step by the
-- lease's keepalive), and it is deleted when the lease is revoked. KEYS[1] bucket hash.
-- ARGV[1..H] header, then ARGV[H+1] key, ARGV[H+2] value, ARGV[H+3] encoding, ARGV[H+4] tags JSON|'',
-- ARGV[H+5] mode, ARGV[H+6] expected|'', ARGV[H+7] if-none-match '1'|'', ARGV[H+8] lease id,
-- ARGV[H+9] the most keys a lease holds.
-- Returns put_entry's reply followed by the held-bytes release time to schedule ('' = none).
local cfg = read_config()
local b = load_bucket(cfg.tp, cfg.bucket, true, cfg.default_history, cfg.default_ttl)
if not b then return {'E', 'bucket_not_found', ''} end
local now = server_ms()
local key, id = ARGV[H + 1], ARGV[H + 8]
local refused, x = check_lease(cfg.tp, b, key, id, tonumber(ARGV[H + 9]), now)
if refused then return refused end
local previous = redis.call('HGET', entry_key(cfg.tp, b.id, key), 'lease')
local res = put_entry(cfg, b, key, ARGV[H + 2], ARGV[H + 3], tostring(x - now), ARGV[H + 4], ARGV[H + 5],
                      ARGV[H + 6], ARGV[H + 7], now)
if res[1] == 'OK' then
  attach_lease(cfg.tp, b, key, id, x, previous)
  res[#res + 1] = cfg.held_at or ''
end
return res
