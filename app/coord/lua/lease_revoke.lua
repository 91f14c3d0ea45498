-- include: _kv_lib
-- include: _coord_lib
-- Revoke a lease: every key attached to it is deleted in this one step (a `delete` event each, or
-- `expire` for one whose own expiry had passed), then the lease. KEYS[1] the lease hash.
-- ARGV[1..H] the common header (_kv_lib; ARGV[2] unused), ARGV[H+1] lease id.
-- Returns {'OK', {bucket, key, op, ...}, held-bytes release time|''} or {'E', 'lease_not_found', id}.
local cfg = read_config()
local tp, id = cfg.tp, ARGV[H + 1]
local now = server_ms()
if not lease_expiry(tp, id, now) then return {'E', 'lease_not_found', id} end
begin_room(cfg, 0)
local out = {}
local keys_key = lease_keys_key(tp, id)
for _, member in ipairs(redis.call('SMEMBERS', keys_key)) do
  local name, key = string.match(member, '^([^/]+)/(.*)$')
  local b = load_bucket(tp, name, false)
  if b then
    local cur = read_entry(tp, b, key)
    if cur and cur[11] == id then
      local op = 'delete'
      if is_expired(cur, now) then op = 'expire' end
      remove_entry(cfg, b, key, cur, op, now)
      out[#out + 1] = name; out[#out + 1] = key; out[#out + 1] = op
    end
  end
end
redis.call('DEL', keys_key, lease_key(tp, id))
redis.call('ZREM', leases_key(tp), id)
return {'OK', out, cfg.held_at or ''}
