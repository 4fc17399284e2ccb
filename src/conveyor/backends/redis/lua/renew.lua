-- Heartbeat for many leases. ARGV[3] lease micros, then pairs (id, token).
-- Returns {renewed ids, lost ids, cancel-requested ids}.
local expires = fmt(NOW + tonumber(ARGV[3]))
local renewed, lost, cancel = {}, {}, {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = jkey(id)
  local f = redis.call('HMGET', key, 's', 'lt', 'cr')
  if f[1] == 'running' and f[2] == token then
    redis.call('HSET', key, 'le', expires, 'ua', NOW_S)
    redis.call('ZADD', RUNNING, expires, id)
    renewed[#renewed + 1] = id
    if f[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {renewed, lost, cancel}
