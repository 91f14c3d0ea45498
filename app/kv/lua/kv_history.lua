-- include: _kv_lib
-- Past revisions of a key, newest first (read-only). KEYS[1] bucket hash.
-- ARGV[1] tenant prefix, ARGV[2] bucket, ARGV[3] key, ARGV[4] limit.
local tp, name = ARGV[1], ARGV[2]
local id = redis.call('HGET', bucket_key(tp, name), 'id')
if not id then
  if name ~= 'default' then return {'E', 'bucket_not_found', ''} end
  return {'OK', {}}
end
return {'OK', redis.call('LRANGE', history_key(tp, id, ARGV[3]), 0, tonumber(ARGV[4]) - 1)}
