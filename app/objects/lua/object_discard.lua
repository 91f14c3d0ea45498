-- include: _object_lib
-- Throw away a pending upload at once (a failed or refused PUT): its chunks, record and
-- garbage entry. KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id.
-- Returns {'OK', chunk keys removed} (0 when the upload was not pending).
local tp, id = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return {'OK', 0} end
local n = tonumber(redis.call('HGET', KEYS[1], 'chunks')) or 0
local batch = {}
for i = 0, n - 1 do
  batch[#batch + 1] = chunk_key(tp, id, i)
  if #batch == 1000 then redis.call('UNLINK', unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('UNLINK', unpack(batch)) end
adopt_pending(tp, id)
return {'OK', n}
