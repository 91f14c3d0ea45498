-- include: _object_lib
-- One page of a bucket's objects in name order: O(log N + page).
-- KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] ZRANGEBYLEX min ARGV[4] max
-- ARGV[5] page size. Returns {'OK', more 1|0, name, size, sha256, ctype, updated ms, ...} or an error.
local tp = ARGV[1]
local b = load_obucket(tp, ARGV[2])
if not b then return err('bucket_not_found', 'No object bucket named ' .. ARGV[2]) end
local limit = tonumber(ARGV[5])
local names = redis.call('ZRANGEBYLEX', object_index_key(tp, b.id), ARGV[3], ARGV[4], 'LIMIT', 0, limit + 1)
local out = {'OK', #names > limit and 1 or 0}
for i = 1, math.min(#names, limit) do
  local f = redis.call('HMGET', object_meta_key(tp, b.id, names[i]), 'size', 'sha256', 'ctype', 'u')
  out[#out + 1] = names[i]
  for j = 1, 4 do out[#out + 1] = f[j] or '' end
end
return out
