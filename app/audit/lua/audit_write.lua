-- include: _audit_lib
-- Record audit events of one tenant in its audit stream, each event id once, then trim the stream
-- by length and age. Also moves up to ARGV[5] events out of the tenant's outbox (the same way).
-- KEYS[1] stream t:{tid}:audit   KEYS[2] ids t:{tid}:audit_ids   KEYS[3] outbox t:{tid}:audit_outbox
-- ARGV[1] max events (MAXLEN ~)  ARGV[2] oldest id to keep (ms, MINID ~)  ARGV[3] now (ms)
-- ARGV[4] forget event ids recorded before this (ms)  ARGV[5] outbox events to move (0 = none)
-- ARGV[6..] events as JSON objects of strings (eid, ts, request_id, username, action, ..., count)
-- Returns {'OK', recorded, left in the outbox, malformed events dropped}.
local stream, ids, outbox = KEYS[1], KEYS[2], KEYS[3]
local recorded, malformed = 0, 0

local function record(json)
  local ok, event = pcall(cjson.decode, json)
  if not ok or type(event) ~= 'table' or type(event.eid) ~= 'string' or event.eid == '' then
    malformed = malformed + 1
    return
  end
  if redis.call('ZADD', ids, 'NX', ARGV[3], event.eid) == 0 then return end -- already recorded
  audit_append(stream, ARGV[1], event)
  recorded = recorded + 1
end

for i = 6, #ARGV do record(ARGV[i]) end

local move = tonumber(ARGV[5])
if move > 0 then
  local waiting = redis.call('LRANGE', outbox, 0, move - 1)
  for _, json in ipairs(waiting) do record(json) end
  if #waiting > 0 then redis.call('LTRIM', outbox, #waiting, -1) end
end

if recorded > 0 then
  redis.call('XTRIM', stream, 'MINID', '~', ARGV[2])
  redis.call('ZREMRANGEBYSCORE', ids, '-inf', '(' .. ARGV[4])
  local surplus = redis.call('ZCARD', ids) - tonumber(ARGV[1])
  if surplus > 0 then redis.call('ZREMRANGEBYRANK', ids, 0, surplus - 1) end
end
return {'OK', recorded, redis.call('LLEN', outbox), malformed}
