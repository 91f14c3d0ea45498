-- include: _object_lib
-- Every object bucket of a tenant, in name order. KEYS[1] bucket name index. ARGV[1] tenant prefix.
-- Returns {'OK', name, chunk_size, max_object_size, description, created_at, objects, bytes, ...}.
local tp = ARGV[1]
local out = {'OK'}
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', obucket_key(tp, name), 'chunk_size', 'max_object_size', 'description',
                       'created_at', 'objects', 'bytes')
  if f[1] then
    out[#out + 1] = name
    for i = 1, 6 do out[#out + 1] = f[i] or '' end
  end
end
return out
