-- include: _kv_lib
-- Settings and live key counts of buckets (read-only). KEYS[1] the tenant's bucket list.
-- ARGV[1] tenant prefix, ARGV[2..] bucket names (none = every bucket of the tenant).
-- Returns {'OK', {name, id, rev, keys, bytes, history, ttl, max_value_size, description, created_at,
--   search ('1' on, 'b' building, 'd' dropping, '0' off), search index bytes}...}.
local tp = ARGV[1]
local names = {}
for i = 2, #ARGV do names[#names + 1] = ARGV[i] end
if #names == 0 then names = redis.call('ZRANGE', buckets_key(tp), 0, -1) end
local now = server_ms()
local out = {}
for _, name in ipairs(names) do
  local m = redis.call('HMGET', bucket_key(tp, name), 'id', 'rev', 'keys', 'bytes', 'history', 'ttl',
                       'max_value_size', 'description', 'created_at', 'search', 'sbytes')
  if m[1] then
    local live = tonumber(m[3]) - redis.call('ZCOUNT', ttl_index_key(tp, m[1]), '-inf', now)
    out[#out + 1] = {name, m[1], m[2], tostring(live), m[4], m[5], m[6], m[7], m[8] or '', m[9], m[10] or '0', m[11] or '0'}
  end
end
return {'OK', out}
