-- include: _webhook_lib
-- Change a webhook: the fields of a JSON object replace the record's (null clears). KEYS[1] the tenant's
-- webhooks hash. ARGV[1] tenant prefix ARGV[2] webhook id ARGV[3] changes JSON ARGV[4] object feed length.
-- Buckets and object events newly subscribed start at "now". Returns {'OK', record JSON}.
local tp, hid = ARGV[1], ARGV[2]
local hook = load_hook(tp, hid)
if not hook then return err('webhook_not_found', 'No webhook ' .. hid) end
local had_objects = subscribes(hook, 'object.')
local changes = cjson.decode(ARGV[3])
for field, value in pairs(changes) do hook[field] = value end
if changes.buckets then start_cursors(tp, hid, hook, false) end
start_cursors(tp, hid, {buckets = {}}, subscribes(hook, 'object.') and not had_objects)
local raw = cjson.encode(hook)
redis.call('HSET', webhooks_key(tp), hid, raw)
refresh_object_feed(tp, ARGV[4])
return {'OK', raw}
