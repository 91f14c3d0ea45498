-- Reserve an Idempotency-Key for one request, or read what the key already holds
-- (app/platform/idempotency.py). KEYS[1] the key's record (t:{tid}:idem:<sha256 of the key>).
-- ARGV[1] the reserving request's owner id, ARGV[2] the lease (ms) of a pending reservation.
-- Returns {'OK', 'new'} when this request reserved the key, else
-- {'OK', state, fp, blen, status, headers, body, omitted} of the record (state pending or done).
local held = redis.call('HMGET', KEYS[1], 'state', 'fp', 'blen', 'status', 'headers', 'body', 'omitted')
if held[1] then
  return {'OK', held[1], held[2] or '', held[3] or '', held[4] or '', held[5] or '', held[6] or '', held[7] or ''}
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'OK', 'new'}
