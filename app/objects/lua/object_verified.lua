-- include: _object_lib
-- Remember that a version's chunks were hashed and matched its SHA-256 at `ARGV[6]` ms, unless
-- the object changed meanwhile (another version, or compacted chunks). GET .../verify then only
-- checks the chunks' lengths until the re-verify interval has passed.
-- KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] name ARGV[4] segs verified
-- ARGV[5] sha256 ARGV[6] ms. Returns {'OK', 1 remembered | 0 changed}.
local tp = ARGV[1]
local b = load_obucket(tp, ARGV[2])
if not b then return {'OK', 0} end
local mkey = object_meta_key(tp, b.id, ARGV[3])
local f = redis.call('HMGET', mkey, 'segs', 'sha256')
if f[1] ~= ARGV[4] or f[2] ~= ARGV[5] then return {'OK', 0} end
redis.call('HSET', mkey, 'verified', ARGV[6])
return {'OK', 1}
