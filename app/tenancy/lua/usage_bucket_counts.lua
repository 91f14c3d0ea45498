-- Set a KV bucket's keys/bytes/hbytes/fb counters after a recount, only if the bucket is still the same
-- incarnation: a bucket deleted (or deleted and created again) meanwhile is left alone, never
-- brought back as a hash of bare counters.
-- KEYS[1] bucket hash. ARGV[1] bucket id counted, ARGV[2] keys, ARGV[3] bytes, ARGV[4] history bytes,
-- ARGV[5] feed bytes. Returns {'OK', 1} if set, else {'OK', 0}.
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return {'OK', 0} end
redis.call('HSET', KEYS[1], 'keys', ARGV[2], 'bytes', ARGV[3], 'hbytes', ARGV[4], 'fb', ARGV[5])
return {'OK', 1}
