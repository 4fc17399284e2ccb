-- Write one record with compare-and-set. ARGV[3] namespace (escaped: no ':'), ARGV[4] key,
-- ARGV[5] value (JSON), ARGV[6] expected version: '' writes unconditionally, '0' creates only
-- if absent, n updates only if the stored version is n. Returns {version, updated_at} when
-- written, 0 (nothing changed) when the expected version did not match.
local ns, key = ARGV[3], ARGV[4]
local rkey = P .. ':rec:' .. ns .. ':' .. key
local current = tonumber(redis.call('HGET', rkey, 'version') or '0')
if ARGV[6] ~= '' and tonumber(ARGV[6]) ~= current then return 0 end
local version = fmt(current + 1)
redis.call('HSET', rkey, 'value', ARGV[5], 'version', version, 'updated_at', NOW_S)
redis.call('ZADD', P .. ':recs:' .. ns, 0, key)
return {version, NOW_S}
