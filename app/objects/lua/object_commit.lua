-- include: _object_lib
-- Commit a streamed PUT: the object's meta swaps to the new upload id in one step.
-- KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] object name ARGV[4] upload id
-- ARGV[5] bucket id seen at the start ARGV[6] size ARGV[7] sha256 ARGV[8] chunks ARGV[9] chunk size
-- ARGV[10] content type ARGV[11] description ARGV[12] metadata JSON ARGV[13] If-Match
-- ARGV[14] If-None-Match ARGV[15] grace ms ARGV[16] default object bytes quota (0 = unlimited).
-- Returns install_version's answer (see _object_lib) or an error.
local tp, id = ARGV[1], ARGV[4]
if not is_pending(tp, id) then return err('upload_expired', 'The upload idled too long and was discarded') end
local b = load_obucket(tp, ARGV[2])
if not b or b.id ~= ARGV[5] then return err('bucket_not_found', 'Bucket ' .. ARGV[2] .. ' was deleted during the upload') end
local size, chunks = tonumber(ARGV[6]), tonumber(ARGV[8])
local segs = ''
if chunks > 0 then segs = id .. ':' .. size .. ':' .. chunks end
local v = {segs = segs, size = size, sha256 = ARGV[7], chunks = chunks, chunk_size = ARGV[9],
           ctype = ARGV[10], desc = ARGV[11], meta = ARGV[12]}
local res = install_version(tp, b, ARGV[3], v, ARGV[13], ARGV[14], tonumber(ARGV[15]), ARGV[16])
if res[1] == 'OK' then adopt_pending(tp, id) end
return res
