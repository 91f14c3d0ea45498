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
-- stream's length bound, ARGV[i + 1] how long (ms) events are kept, ARGV[i + 2 ..] the event's
-- fields in AUDIT_FIELDS order, made by the API as its audit middleware would; the write fills in
-- what only it knows: the time, the status and the outcome (a success).
local function audit_request(tp, i, now, status)
  local event = {}
  for j, name in ipairs(AUDIT_FIELDS) do event[name] = ARGV[i + 1 + j] end
  event.ts, event.status, event.outcome = tostring(now), status, 'success'
  local stream = audit_key(tp)
  audit_append(stream, ARGV[i], event)
  redis.call('XTRIM', stream, 'MINID', '~', now - tonumber(ARGV[i + 1]))
end
