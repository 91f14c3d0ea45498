-- include: _webhook_lib
-- A page of a webhook's deliveries, newest first. KEYS[1] the tenant's webhooks hash.
-- ARGV[1] tenant prefix ARGV[2] webhook id ARGV[3] before this seq (0: from the newest) ARGV[4] page size.
-- Returns {'OK', delivery JSON...}.
local tp, hid = ARGV[1], ARGV[2]
if redis.call('HEXISTS', webhooks_key(tp), hid) == 0 then
  return err('webhook_not_found', 'No webhook ' .. hid)
end
local before = tonumber(ARGV[3])
local top = '+inf'
if before > 0 then top = '(' .. before end
local seqs = redis.call('ZREVRANGEBYSCORE', webhook_log_key(tp, hid), top, '-inf', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {'OK'}
if #seqs == 0 then return out end
local records = redis.call('HMGET', webhook_deliveries_key(tp, hid), unpack(seqs))
for _, raw in ipairs(records) do
  if raw then out[#out + 1] = raw end
end
return out
