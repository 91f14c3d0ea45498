-- include: _webhook_lib
-- The outcome of one delivery attempt, by the worker holding the webhook's lease; then the next head.
-- KEYS[1] the tenant's webhooks hash. ARGV[1] tenant prefix ARGV[2] webhook id ARGV[3] lease token
-- ARGV[4] lease ms ARGV[5] now ms ARGV[6] delivery seq ARGV[7] 'ok' or 'fail' ARGV[8] status code (0: none)
-- ARGV[9] response excerpt or error ARGV[10] latency ms ARGV[11] next attempt ms (on failure)
-- ARGV[12] disable after ms of continuous failure ARGV[13] finished deliveries kept
-- ARGV[14] attempts per second of the tenant (0 = unlimited) ARGV[15] when the attempt started (ms).
-- A success clears the webhook's failing_since; a failure sets it, and disables the webhook once it is
-- older than ARGV[12]. Returns {'OK', state, head JSON or false, next attempt ms or false} like webhook_pull.
local tp, hid, token, lease_ms, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local seq, ok = ARGV[6], ARGV[7] == 'ok'
local hook = load_hook(tp, hid)
if not hook then return {'OK', 'gone', false, false} end
if not take_lease(tp, hid, token, lease_ms) then return {'OK', 'busy', false, false} end
local dk = webhook_deliveries_key(tp, hid)
local raw = redis.call('HGET', dk, seq)
if raw then
  local d = cjson.decode(raw)
  d.attempts = (tonumber(d.attempts) or 0) + 1
  d.status = tonumber(ARGV[8]) ~= 0 and tonumber(ARGV[8]) or cjson.null
  d.excerpt = ARGV[9]
  d.latency_ms = tonumber(ARGV[10])
  d.last_ms = tonumber(ARGV[15])
  if ok then
    d.state = 'delivered'
    d.next_ms = cjson.null
    redis.call('ZREM', webhook_queue_key(tp, hid), seq)
  else
    d.state = 'retrying'
    d.next_ms = tonumber(ARGV[11])
  end
  redis.call('HSET', dk, seq, cjson.encode(d))
end
local changed = false
if ok then
  if hook.failing_since_ms ~= nil and hook.failing_since_ms ~= cjson.null then
    hook.failing_since_ms = cjson.null
    changed = true
  end
else
  if hook.failing_since_ms == nil or hook.failing_since_ms == cjson.null then
    hook.failing_since_ms = tonumber(ARGV[15])
    changed = true
  end
  if hook.enabled and now - tonumber(hook.failing_since_ms) >= tonumber(ARGV[12]) then
    hook.enabled = false
    local status = tonumber(ARGV[8]) ~= 0 and ('HTTP ' .. ARGV[8]) or ARGV[9]
    hook.disabled_reason = 'every delivery failed for ' .. math.floor(tonumber(ARGV[12]) / 1000) ..
      ' s (since ' .. hook.failing_since_ms .. ' ms); last attempt: ' .. string.sub(status, 1, 200)
    hook.disabled_ms = now
    changed = true
  end
end
if changed then
  redis.call('HSET', webhooks_key(tp), hid, cjson.encode(hook))
  if not hook.enabled then
    -- its object events are not recorded for it any more (a disabled webhook reads nothing)
    local maxlen = redis.call('GET', object_feed_on_key(tp))
    if maxlen then refresh_object_feed(tp, maxlen) end
  end
end
trim_log(tp, hid, tonumber(ARGV[13]))
if not hook.enabled then return {'OK', 'disabled', false, false} end
local head, state, next_ms = due_head(tp, hid, now, tonumber(ARGV[14]))
return {'OK', state, head or false, next_ms or false}
