-- include: _kv_lib
-- Live keys of a bucket in O(log N) (read-only). KEYS[1] bucket hash. ARGV[1] tenant prefix, ARGV[2] bucket.
local tp, name = ARGV[1], ARGV[2]
local id = redis.call('HGET', bucket_key(tp, name), 'id')
if not id then
  if name ~= 'default' then return {'E', 'bucket_not_found', ''} end
  return {'OK', 0}
end
local expired = redis.call('ZCOUNT', ttl_index_key(tp, id), '-inf', server_ms())
return {'OK', redis.call('ZCARD', key_index_key(tp, id)) - expired}
