-- include: _object_lib
-- Forget ids whose chunks the collector deleted (their bytes leave object_garbage_bytes). KEYS[1] garbage set. ARGV[1] tenant prefix,
-- ARGV[2..] upload ids. Returns {'OK', how many were forgotten}.
local tp = ARGV[1]
local done = 0
for i = 2, #ARGV do
  local ukey = upload_key(tp, ARGV[i])
  local f = redis.call('HMGET', ukey, 'state', 'gbytes')
  if f[1] == 'collecting' then
    -- Never below 0: garbage of a Redis written before the counter existed was never counted.
    local garbage = tonumber(redis.call('HGET', usage_key(tp), 'object_garbage_bytes')) or 0
    count_garbage(tp, -math.min(tonumber(f[2]) or 0, garbage))
    redis.call('DEL', ukey)
    redis.call('ZREM', KEYS[1], ARGV[i])
    done = done + 1
  end
end
return {'OK', done}
