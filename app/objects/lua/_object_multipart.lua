-- Shared by the multipart scripts (include after _object_lib). KEYS[1] is always the upload hash.

-- The pending, unexpired multipart upload `id` of object `name` in bucket `bucket`, or nil.
local function load_multipart(tp, id, bucket, name)
  local f = redis.call('HMGET', upload_key(tp, id), 'kind', 'state', 'name', 'x', 'bid', 'chunk_size', 'max', 'bucket')
  if f[1] ~= 'multipart' or f[2] ~= 'pending' or f[3] ~= name or f[8] ~= bucket or tonumber(f[4]) <= server_ms() then
    return nil
  end
  return {key = upload_key(tp, id), bid = f[5], chunk_size = f[6], max = f[7], expires = tonumber(f[4])}
end

-- A part field "<part upload id>:<size>:<chunks>:<sha256>" as its pieces.
local function parse_part(value)
  return string.match(value or '', '^([^:]+):(%d+):(%d+):(%x*)$')
end

local function no_upload(id) return err('upload_not_found', 'No open multipart upload ' .. id .. ' for this object') end
