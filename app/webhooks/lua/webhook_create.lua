-- include: _webhook_lib
-- Register a webhook. KEYS[1] the tenant's webhooks hash. ARGV[1] tenant prefix ARGV[2] webhook id
-- ARGV[3] record JSON ARGV[4] most webhooks per tenant ARGV[5] object feed length.
local tp, hid = ARGV[1], ARGV[2]
if redis.call('HLEN', webhooks_key(tp)) >= tonumber(ARGV[4]) then
  return err('too_many_webhooks', 'A tenant may register at most ' .. ARGV[4] .. ' webhooks')
end
redis.call('HSET', webhooks_key(tp), hid, ARGV[3])
local hook = cjson.decode(ARGV[3])
start_cursors(tp, hid, hook, true)
refresh_object_feed(tp, ARGV[5])
return {'OK'}
