-- include: _kv_lib
-- Worker: purge up to ARGV[3] keys of a deleted bucket incarnation. KEYS[1] the tenant's trash list.
-- ARGV[1] tenant prefix, ARGV[2] bucket id, ARGV[3] batch size.
-- Returns {'OK', number of items still left} (0 = done, the id is removed from the trash list).
local left = purge_bucket_keys(ARGV[1], ARGV[2], tonumber(ARGV[3]))
if left == 0 then redis.call('LREM', trash_key(ARGV[1]), 0, ARGV[2]) end
return {'OK', left}
