-- include: _object_lib
-- When the tenant next needs the object worker: the earliest garbage, compaction or trashed
-- bucket. KEYS[1] garbage set. ARGV[1] tenant prefix. Returns {'OK', ms}, or {'OK'} when it needs nothing.
local tp = ARGV[1]
local best = false
for _, key in ipairs({KEYS[1], object_compactions_key(tp), object_trash_key(tp)}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] and (not best or tonumber(first[2]) < best) then best = tonumber(first[2]) end
end
if best then return {'OK', best} end
return {'OK'}
