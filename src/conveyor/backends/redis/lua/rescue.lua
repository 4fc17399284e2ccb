-- Expired leases (lease_expires_at < now). ARGV[3] limit, ARGV[4] max rescues.
-- Returns {requeued ids, failed ids, cancelled ids}.
local max_rescues = tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', RUNNING, '-inf', '(' .. NOW_S, 'LIMIT', 0, ARGV[3])
local requeued, failed, cancelled = {}, {}, {}
for _, id in ipairs(ids) do
  local key = jkey(id)
  local f = redis.call('HMGET', key, 's', 'q', 'a', 'ma', 'cr', 'pr')
  if f[1] ~= 'running' then
    redis.call('ZREM', RUNNING, id)
  else
    local rescues = redis.call('HINCRBY', key, 'rs', 1)
    append_error(key, '{"attempt":' .. f[3] .. ',"at":' .. NOW_S ..
      ',"type":"conveyor.LeaseExpired","message":"the lease expired without a heartbeat",' ..
      '"traceback":null,"details":null}')
    if f[5] == '1' then
      finish(id, key, f[2], 'running', 'cancelled')
      cancelled[#cancelled + 1] = id
    elseif tonumber(f[3]) >= tonumber(f[4]) or rescues > max_rescues then
      finish(id, key, f[2], 'running', 'failed')
      failed[#failed + 1] = id
    else
      back_to_queue(id, key, f[2], tonumber(f[6]))
      requeued[#requeued + 1] = id
    end
  end
end
flush_counts()
return {requeued, failed, cancelled}
