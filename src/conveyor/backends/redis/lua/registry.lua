-- Small writes that need the clock. ARGV[3] verb.
-- 'worker' ARGV[4] id, ARGV[5] JSON: stored as "<now micros> <json>".
-- 'revoke' ARGV[4] token id: 1 when a live token was revoked.
-- 'now': just the clock.
local verb = ARGV[3]
if verb == 'worker' then
  redis.call('HSET', P .. ':workers', ARGV[4], NOW_S .. ' ' .. ARGV[5])
elseif verb == 'revoke' then
  if redis.call('HEXISTS', P .. ':tokens', ARGV[4]) == 0 then return 0 end
  return redis.call('HSETNX', P .. ':revoked', ARGV[4], NOW_S)
end
return NOW_S
