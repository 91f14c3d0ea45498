-- Store a new API key of a tenant unless the tenant has its maximum already (one step, so
-- concurrent creations cannot pass the limit). Expired keys are dropped first (they count no more).
-- KEYS[1] t:{tid}:api_keys, KEYS[2] t:{tid}:api_keys_used.
-- ARGV[1] key id, ARGV[2] the JSON record, ARGV[3] the maximum, ARGV[4] now (ms).
-- Returns {'OK', count} or {'E', 'too_many_api_keys', detail}.
local now = tonumber(ARGV[4])
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local ok, record = pcall(cjson.decode, all[i + 1])
    if ok and type(record.expires_ms) == 'number' and record.expires_ms <= now then
      redis.call('HDEL', KEYS[1], all[i])
      redis.call('HDEL', KEYS[2], all[i])
    end
  end
end
local count = redis.call('HLEN', KEYS[1])
if count >= tonumber(ARGV[3]) then
  return {'E', 'too_many_api_keys', 'the tenant has ' .. count .. ' API keys, the maximum; revoke one first'}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'OK', count + 1}
