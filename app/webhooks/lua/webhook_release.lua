-- Give back a webhook's lease if this worker still holds it. KEYS[1] the lease. ARGV[1] the token.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return {'OK'}
