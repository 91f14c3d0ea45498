-- Shared by audit_write.lua (the worker's batches) and the KV scripts that record a request's event
-- in the write's own step (kv_put.lua).

-- The fields of a stream entry, in order (app/audit/model.py STREAM_FIELDS): every entry has all of
-- them, '' for an absent one, so the stream stores their names once.
local AUDIT_FIELDS = {'eid', 'ts', 'request_id', 'username', 'api_key_id', 'api_key_name', 'action', 'bucket',
                      'key', 'outcome', 'status', 'client_ip', 'count'}

-- Appends `event` (field name -> string; anything else is '') to the audit stream `stream`, which
-- keeps about `maxlen` entries (MAXLEN ~).
local function audit_append(stream, maxlen, event)
  local args = {'XADD', stream, 'MAXLEN', '~', maxlen, '*'}
  for _, name in ipairs(AUDIT_FIELDS) do
    local value = event[name]
    if type(value) ~= 'string' then value = '' end
    args[#args + 1] = name
    args[#args + 1] = value
  end
  redis.call(unpack(args))
end

-- Records the audit event of the request whose write this script is (see KVStore.put): ARGV[i] the
-- stream's length bound, ARGV[i + 1] how long (ms) events are kept, ARGV[i + 2] how many earlier
-- events come first, then each event's fields in AUDIT_FIELDS order, made by the API as its audit
-- middleware would. The earlier events (the tenant's events the API process handed to the worker
-- lately) are written first, each once by its id as audit_write.lua does (the worker's copy is then
-- dropped); the request's own event last, with what only the write knows: the time, the status and
-- the outcome (a success).
local function audit_request(tp, i, now, status)
  local stream, maxlen, n = audit_key(tp), ARGV[i], tonumber(ARGV[i + 2])
  local function event_at(k)  -- the k-th event of the arguments (0: the first)
    local event, at = {}, i + 2 + k * #AUDIT_FIELDS
    for j, name in ipairs(AUDIT_FIELDS) do event[name] = ARGV[at + j] end
    return event
  end
  for k = 0, n - 1 do
    local event = event_at(k)
    if redis.call('ZADD', audit_ids_key(tp), 'NX', now, event.eid) == 1 then audit_append(stream, maxlen, event) end
  end
  local event = event_at(n)
  event.ts, event.status, event.outcome = tostring(now), status, 'success'
  audit_append(stream, maxlen, event)
  redis.call('XTRIM', stream, 'MINID', '~', now - tonumber(ARGV[i + 1]))
end
