-- include: _webhook_lib
-- Delete a webhook with its cursors, queue and deliveries. KEYS[1] the tenant's webhooks hash.
-- ARGV[1] tenant prefix ARGV[2] webhook id ARGV[3] object feed length. Returns {'OK', webhooks left}.
local tp, hid = ARGV[1], ARGV[2]
if redis.call('HDEL', webhooks_key(tp), hid) == 0 then return err('webhook_not_found', 'No webhook ' .. hid) end
redis.call('DEL', webhook_cursors_key(tp, hid), webhook_queue_key(tp, hid), webhook_deliveries_key(tp, hid),
           webhook_log_key(tp, hid), webhook_lease_key(tp, hid))
refresh_object_feed(tp, ARGV[3])
return {'OK', redis.call('HLEN', webhooks_key(tp))}
