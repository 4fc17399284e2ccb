-- Replace a running job's progress. ARGV[3] id, [4] token, [5] JSON. Returns 1, or 0 when
-- the lease is not current.
local key = jkey(ARGV[3])
local f = redis.call('HMGET', key, 's', 'lt')
if f[1] ~= 'running' or f[2] ~= ARGV[4] then return 0 end
redis.call('HSET', key, 'pg', ARGV[5], 'ua', NOW_S)
return 1
