-- include: _object_lib
-- include: _object_multipart
-- Complete a multipart upload: the listed parts, in order, become the object's content at once.
-- Parts not listed become garbage. An object of several parts is queued for compaction.
-- KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] bucket ARGV[4] object name
-- ARGV[5] "<n>:<part upload id>,..." (the parts hashed by the caller) ARGV[6] sha256 of the whole
-- ARGV[7] If-Match ARGV[8] If-None-Match ARGV[9] grace ms ARGV[10] max object size
-- ARGV[11] default object bytes quota (0 = unlimited) ARGV[12] '1' to check only: the caller asks
-- before it reads and hashes the parts, so a completion that would be refused costs no hashing.
-- A refused completion leaves the upload as it was (its parts keep counting as pending bytes).
-- Returns {'OK', created, version, created ms, updated ms, garbage due, size, chunks, segments},
-- {'OK'} when it only checked, or an error.
local tp, id, name = ARGV[1], ARGV[2], ARGV[4]
local up = load_multipart(tp, id, ARGV[3], name)
if not up then return no_upload(id) end
local b = load_obucket(tp, ARGV[3])
if not b or b.id ~= up.bid then return err('bucket_not_found', 'Bucket ' .. ARGV[3] .. ' was deleted during the upload') end
local segs, used, size, chunks, nsegs = {}, {}, 0, 0, 0
for n, pid in string.gmatch(ARGV[5], '(%d+):([^,]+)') do
  local part_id, part_size, part_chunks = parse_part(redis.call('HGET', up.key, 'p:' .. n))
  if part_id ~= pid then return err('parts_changed', 'Part ' .. n .. ' was replaced during completion; retry') end
  used['p:' .. n] = true
  if tonumber(part_size) > 0 then
    segs[#segs + 1] = part_id .. ':' .. part_size .. ':' .. part_chunks
    nsegs = nsegs + 1
  end
  size = size + tonumber(part_size)
  chunks = chunks + tonumber(part_chunks)
end
if size > tonumber(ARGV[10]) then
  return err('payload_too_large', 'The parts add up to ' .. size .. ' bytes, over the limit of ' .. ARGV[10])
end
if ARGV[12] == '1' then
  local cur, refusal = check_install(tp, b, name, size, ARGV[7], ARGV[8], ARGV[11])
  if not cur then return refusal end
  return {'OK'}
end
local f = redis.call('HMGET', up.key, 'ctype', 'desc', 'meta', 'pbytes')
local v = {segs = table.concat(segs, ','), size = size, sha256 = ARGV[6], chunks = chunks,
           chunk_size = up.chunk_size, ctype = f[1], desc = f[2], meta = f[3]}
local res = install_version(tp, b, name, v, ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[11])
if res[1] ~= 'OK' then return res end
-- The parts' bytes leave the pending count: the listed ones are the object's now (counted by
-- install_version), the others garbage. A part of a Redis written before was never counted.
local counted = tonumber(f[4]) or 0
count_pending(tp, -counted)
counted = math.max(0, counted - size)
local fields = redis.call('HGETALL', up.key)
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'p:' and not used[fields[i]] then
    local part_id, part_size, part_chunks = parse_part(fields[i + 1])
    local bytes = math.min(tonumber(part_size), counted)
    counted = counted - bytes
    discard_id(tp, part_id, part_chunks, res[5], bytes)
    if res[6] > res[5] then res[6] = res[5] end
  end
end
redis.call('DEL', up.key)
redis.call('ZREM', garbage_key(tp), id)
if nsegs > 1 then redis.call('ZADD', object_compactions_key(tp), res[5], b.id .. ':' .. name) end
res[#res + 1] = size
res[#res + 1] = chunks
res[#res + 1] = nsegs
return res
