-- include: _object_lib
-- include: _object_multipart
-- Claim the tenant's garbage that is due: each id is marked `collecting` (a pending upload can
-- no longer write or commit) and pushed back by the retry delay, so a worker that dies while
-- deleting leaves it to the next pass. An expired or aborted multipart upload is expanded into
-- one garbage entry per part, due now. Bytes of uploads in progress become garbage bytes.
-- KEYS[1] garbage set. ARGV[1] tenant prefix ARGV[2] now ms ('' = server time) ARGV[3] limit
-- ARGV[4] retry ms. Returns {'OK', entries handled, id, chunks, id, chunks, ...}: the ids to delete.
local tp = ARGV[1]
local now = now_or(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {'OK', #due}
for _, id in ipairs(due) do
  local ukey = upload_key(tp, id)
  local f = redis.call('HMGET', ukey, 'kind', 'chunks', 'state', 'bytes', 'pbytes')
  if f[1] == 'multipart' then
    local counted = tonumber(f[5]) or 0
    count_pending(tp, -counted)
    local fields = redis.call('HGETALL', ukey)
    for i = 1, #fields, 2 do
      if string.sub(fields[i], 1, 2) == 'p:' then
        local part_id, part_size, part_chunks = parse_part(fields[i + 1])
        local bytes = math.min(tonumber(part_size), counted)
        counted = counted - bytes
        discard_id(tp, part_id, part_chunks, now, bytes)
      end
    end
    redis.call('DEL', ukey)
    redis.call('ZREM', KEYS[1], id)
  elseif not f[1] then
    redis.call('ZREM', KEYS[1], id)  -- nothing is known about it: nothing to delete
  else
    if f[3] == 'pending' then  -- an upload that idled out: its bytes move from pending to garbage
      local bytes = tonumber(f[4]) or 0
      count_pending(tp, -bytes)
      count_garbage(tp, bytes)
      redis.call('HSET', ukey, 'gbytes', bytes)
    end
    redis.call('HSET', ukey, 'state', 'collecting')
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), id)
    out[#out + 1] = id
    out[#out + 1] = tonumber(f[2]) or 0
  end
end
return out
