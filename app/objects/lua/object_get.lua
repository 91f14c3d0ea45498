-- include: _object_lib
-- Read an object's metadata (the reader then streams the segments it names, even if the object
-- is replaced meanwhile). KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] name.
-- Returns {'OK', bucket id, field, value, ...} or an error.
local tp = ARGV[1]
local b = load_obucket(tp, ARGV[2])
if not b then return err('bucket_not_found', 'No object bucket named ' .. ARGV[2]) end
local fields = redis.call('HGETALL', object_meta_key(tp, b.id, ARGV[3]))
if #fields == 0 then return err('object_not_found', 'No object named ' .. ARGV[3]) end
local out = {'OK', b.id}
for i = 1, #fields do out[#out + 1] = fields[i] end
return out
