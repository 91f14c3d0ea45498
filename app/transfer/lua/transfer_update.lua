-- Write fields of a job only while the caller's run still owns it (a run that lost its lease to a
-- newer one must stop, not overwrite). KEYS[1] the job hash. ARGV[1] the run number, ARGV[2..] field/value pairs.
-- Returns {'OK'} or {'E', 'lost', status}.
local job = KEYS[1]
local f = redis.call('HMGET', job, 'status', 'attempts')
if f[1] ~= 'running' or tonumber(f[2]) ~= tonumber(ARGV[1]) then return {'E', 'lost', f[1] or ''} end
redis.call('HSET', job, unpack(ARGV, 2))
return {'OK'}
