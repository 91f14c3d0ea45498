-- include: _webhook_lib
-- From the API: queue a test event, or retry a delivery. KEYS[1] the tenant's webhooks hash.
-- ARGV[1] tenant prefix ARGV[2] webhook id ARGV[3] 'test' or 'retry' ARGV[4] now ms
-- ARGV[5] (retry) the delivery's seq ARGV[6] most queued deliveries ARGV[7] finished deliveries kept.
-- A test goes to the tail of the queue. A waiting delivery retried is due now; a finished one is sent
-- again (same webhook-id) from the tail. Returns {'OK', delivery JSON}.
local tp, hid, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
local hook = load_hook(tp, hid)
if not hook then return err('webhook_not_found', 'No webhook ' .. hid) end
local qk, dk = webhook_queue_key(tp, hid), webhook_deliveries_key(tp, hid)
local function full()
  if redis.call('ZCARD', qk) >= tonumber(ARGV[6]) then
    return err('webhook_backlog_full', 'The webhook has ' .. ARGV[6] .. ' deliveries waiting already')
  end
end
local seq
if ARGV[3] == 'test' then
  local refusal = full()
  if refusal then return refusal end
  local n = redis.call('HINCRBY', webhook_cursors_key(tp, hid), '#test', 1)
  seq = enqueue(tp, hid, {type = 'webhook.test', msg = 'msg_test_' .. hid .. '_' .. n}, now)
else
  local raw = redis.call('HGET', dk, ARGV[5])
  if not raw then return err('delivery_not_found', 'No delivery ' .. ARGV[5] .. ' of webhook ' .. hid) end
  local d = cjson.decode(raw)
  if redis.call('ZSCORE', qk, ARGV[5]) then
    d.next_ms = now
    redis.call('HSET', dk, ARGV[5], cjson.encode(d))
    return {'OK', cjson.encode(d)}
  end
  local refusal = full()
  if refusal then return refusal end
  d.attempts, d.status, d.excerpt, d.latency_ms, d.last_ms = 0, cjson.null, cjson.null, cjson.null, cjson.null
  d.retry_of = tonumber(ARGV[5])
  d.created_ms = now
  seq = enqueue(tp, hid, d, now)
end
trim_log(tp, hid, tonumber(ARGV[7]))
return {'OK', redis.call('HGET', dk, seq)}
