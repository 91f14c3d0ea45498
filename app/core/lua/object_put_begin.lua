-- include: _object_lib
-- Start a PUT: check the bucket and the preconditions, and register the fresh upload id as
-- pending garbage before any chunk is written, so an interrupted upload is always collected.
-- KEYS[1] bucket hash. ARGV[1] tenant prefix ARGV[2] bucket ARGV[3] object name ARGV[4] upload id
-- ARGV[5] idle ms ARGV[6] If-Match list ARGV[7] If-None-Match list.
-- Returns {'OK', bucket id, chunk size, max object size, pending deadline ms} or an error.
local tp = ARGV[1]
local b = load_obucket(tp, ARGV[2])
if not b then return err('bucket_not_found', 'No object bucket named ' .. ARGV[2]) end
local sha = redis.call('HGET', object_meta_key(tp, b.id, ARGV[3]), 'sha256')
if not conditions_hold(sha or nil, ARGV[6], ARGV[7]) then
  return err('precondition_failed', 'The object does not match If-Match / If-None-Match')
end
local deadline = server_ms() + tonumber(ARGV[5])
stage_pending(tp, ARGV[4], 'put', deadline)
return {'OK', b.id, b.chunk_size, b.max, deadline}
