-- Claim an export/import job for one run of a worker. KEYS[1] the job hash.
-- ARGV[1] now (ms), ARGV[2] lease (ms), ARGV[3] most runs in all.
-- A job is claimed when queued, or running with its lease run out (its worker stopped); the run
-- count goes up, and past the limit the job fails with a clear error instead.
-- Returns {'OK', run number} or {'E', 'finished'|'busy'|'gave_up'|'missing', status}.
local job = KEYS[1]
local now, lease, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local f = redis.call('HMGET', job, 'status', 'lease', 'attempts')
local status, held, runs = f[1], tonumber(f[2]) or 0, tonumber(f[3]) or 0
if not status then return {'E', 'missing', ''} end
if status == 'done' or status == 'failed' or status == 'uploading' then return {'E', 'finished', status} end
if status == 'running' and held > now then return {'E', 'busy', status} end
if runs >= most then
  redis.call('HSET', job, 'status', 'failed', 'updated', now, 'error',
    'the worker stopped ' .. runs .. ' times during this job; start it again')
  return {'E', 'gave_up', status}
end
redis.call('HSET', job, 'status', 'running', 'lease', now + lease, 'attempts', runs + 1, 'updated', now)
return {'OK', runs + 1}
