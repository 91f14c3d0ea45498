-- include: _object_lib
-- Start a PUT: check the bucket and the preconditions, and register the fresh upload id as
-- pending garbage before any chunk is written, so an interrupted upload is always collected.
-- KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] object name ARGV[4] upload id
-- ARGV[5] idle ms ARGV[6] If-Match list ARGV[7] If-None-Match list
-- ARGV[8] Content-Length or '' (optional) ARGV[9] default object bytes quota (optional): an upload
-- whose declared length cannot fit the quota is refused before any byte is stored (each chunk
-- write checks again, and the commit, atomically, with the real size). The upload may use the
-- size of the object it replaces besides the free quota (its credit).
-- Returns {'OK', bucket id, chunk size, max object size, pending deadline ms} or an error.
local tp = ARGV[1]
local b = load_obucket(tp, ARGV[2])
if not b then return err('bucket_not_found', 'No object bucket named ' .. ARGV[2]) end
local cur = redis.call('HMGET', object_meta_key(tp, b.id, ARGV[3]), 'sha256', 'size')
if not conditions_hold(cur[1] or nil, ARGV[6], ARGV[7]) then
  return err('precondition_failed', 'The object does not match If-Match / If-None-Match')
end
local credit = tonumber(cur[2]) or 0
local length = tonumber(ARGV[8] or '')
if length and ARGV[9] then
  local over = check_write_quota(tp, length, credit, ARGV[9])
  if over then return over end
end
local deadline = server_ms() + tonumber(ARGV[5])
stage_pending(tp, ARGV[4], 'put', deadline, credit)
return {'OK', b.id, b.chunk_size, b.max, deadline}
