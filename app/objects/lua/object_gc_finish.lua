-- include: _object_lib
-- Forget ids whose chunks the collector deleted. KEYS[1] garbage set. ARGV[1] tenant prefix,
-- ARGV[2..] upload ids. Returns {'OK', how many were forgotten}.
local tp = ARGV[1]
local done = 0
for i = 2, #ARGV do
  local ukey = upload_key(tp, ARGV[i])
  if redis.call('HGET', ukey, 'state') == 'collecting' then
    redis.call('DEL', ukey)
    redis.call('ZREM', KEYS[1], ARGV[i])
    done = done + 1
  end
end
return {'OK', done}
