-- include: _kv_lib
-- Read keys (read-only). KEYS[1] bucket hash. ARGV[1] tenant prefix, ARGV[2] bucket, ARGV[3..] keys.
-- Returns {'OK', {entry fields or 0 per key}} (0: absent or expired) or {'E', 'bucket_not_found'}.
local tp, name = ARGV[1], ARGV[2]
local id = redis.call('HGET', bucket_key(tp, name), 'id')
local out = {}
if not id then
  if name ~= 'default' then return {'E', 'bucket_not_found', ''} end
  for i = 3, #ARGV do out[#out + 1] = 0 end
  return {'OK', out}
end
local now = server_ms()
for i = 3, #ARGV do
  local cur = redis.call('HMGET', entry_key(tp, id, ARGV[i]), unpack(ENTRY_FIELDS))
  if not cur[3] or is_expired(cur, now) then
    out[#out + 1] = 0
  else
    for j = 1, 8 do if not cur[j] then cur[j] = '' end end
    out[#out + 1] = cur
  end
end
return {'OK', out, now}
