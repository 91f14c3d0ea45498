-- include: _object_lib
-- include: _object_multipart
-- Start writing one part: register the part's fresh upload id as pending garbage first.
-- KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] object name
-- ARGV[4] part upload id ARGV[5] idle ms ARGV[6] bucket.
-- Returns {'OK', chunk size, max object size, pending deadline ms} or an error.
local tp = ARGV[1]
local up = load_multipart(tp, ARGV[2], ARGV[6], ARGV[3])
if not up then return no_upload(ARGV[2]) end
local deadline = server_ms() + tonumber(ARGV[5])
stage_pending(tp, ARGV[4], 'part', deadline)
return {'OK', up.chunk_size, up.max, deadline}
