-- include: _object_lib
-- include: _object_multipart
-- Start writing one part: register the part's fresh upload id as pending garbage first.
-- KEYS[1] upload hash. ARGV[1] tenant prefix ARGV[2] upload id ARGV[3] object name
-- ARGV[4] part upload id ARGV[5] idle ms ARGV[6] bucket ARGV[7] Content-Length or ''
-- ARGV[8] default object bytes quota: a part whose declared length cannot fit is refused here,
-- before a byte is stored (each chunk write checks again with the real bytes).
-- Returns {'OK', chunk size, max object size, pending deadline ms} or an error.
local tp = ARGV[1]
local up = load_multipart(tp, ARGV[2], ARGV[6], ARGV[3])
if not up then return no_upload(ARGV[2]) end
local length = tonumber(ARGV[7])
if length then
  local over = check_write_quota(tp, length, 0, ARGV[8])
  if over then return over end
end
local deadline = server_ms() + tonumber(ARGV[5])
stage_pending(tp, ARGV[4], 'part', deadline, 0)
return {'OK', up.chunk_size, up.max, deadline}
