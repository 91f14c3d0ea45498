-- include: _kv_lib
-- include: _coord_lib
-- A lease and its live attached keys (read-only). KEYS[1] the lease hash. ARGV[1] tenant prefix, ARGV[2] id.
-- Returns {'OK', ttl, expiry ms, now, {bucket, key, ...}} or {'E', 'lease_not_found', id}.
local tp, id = ARGV[1], ARGV[2]
local now = server_ms()
local x = lease_expiry(tp, id, now)
if not x then return {'E', 'lease_not_found', id} end
local out = {}
local buckets = {}
for _, member in ipairs(redis.call('SMEMBERS', lease_keys_key(tp, id))) do
  local name, key = string.match(member, '^([^/]+)/(.*)$')
  local b = buckets[name]
  if b == nil then b = load_bucket(tp, name, false) or false; buckets[name] = b end
  if b then
    local cur = redis.call('HMGET', entry_key(tp, b.id, key), 'ver', 'lease', 'x')
    if cur[1] and cur[2] == id and not (cur[3] and tonumber(cur[3]) <= now) then
      out[#out + 1] = name; out[#out + 1] = key
    end
  end
end
return {'OK', redis.call('HGET', lease_key(tp, id), 'ttl'), x, now, out}
