-- Settle a pending Idempotency-Key reservation that this request still holds
-- (app/platform/idempotency.py): store its response, release it, or extend its lease.
-- KEYS[1] the key's record. ARGV[1] the owner id, ARGV[2] 'store' | 'release' | 'extend',
-- ARGV[3] ms (store: the idempotency window; extend: the lease); store adds ARGV[4..9]
-- fp, blen, status, headers, body, omitted.
-- Returns {'OK', 1}, or {'OK', 0} when the record is no longer this request's reservation.
local held = redis.call('HMGET', KEYS[1], 'state', 'owner')
if held[1] ~= 'pending' or held[2] ~= ARGV[1] then
  return {'OK', 0}
end
local op = ARGV[2]
if op == 'release' then
  redis.call('DEL', KEYS[1])
elseif op == 'extend' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('HSET', KEYS[1], 'state', 'done', 'fp', ARGV[4], 'blen', ARGV[5], 'status', ARGV[6],
    'headers', ARGV[7], 'body', ARGV[8], 'omitted', ARGV[9])
  redis.call('HDEL', KEYS[1], 'owner')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {'OK', 1}
