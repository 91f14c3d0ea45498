-- include: _watch_lib
-- The buckets a tenant-wide stream starts to follow: KEYS[1] the tenant's bucket names sorted set;
-- ARGV[1] tenant prefix, ARGV[2..] bucket names (none: every bucket).
-- Returns {'OK', {name, bucket id, revision, first feed entry id or '', ...}} (missing names left out).
local names = nil
if #ARGV > 1 then
  names = {}
  for i = 2, #ARGV do names[#names + 1] = ARGV[i] end
end
return {'OK', watched_buckets(ARGV[1], names)}
