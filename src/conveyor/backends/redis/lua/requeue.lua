-- Requeue failed/cancelled jobs. ARGV[3] the statuses allowed, comma-separated; ARGV[4..]
-- ids. Jobs in any other status are skipped. Returns the ids requeued.
local allowed = {}
for s in string.gmatch(ARGV[3], '[^,]+') do allowed[s] = true end
local done, woken = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = jkey(id)
  local f = redis.call('HMGET', key, 's', 'q', 'pr')
  if f[1] and allowed[f[1]] then
    index_status(id, f[2], f[1], 'queued')
    redis.call('ZREM', P .. ':fin:' .. f[1] .. ':' .. f[2], id)
    redis.call('HSET', key, 's', 'queued', 'a', '0', 'rs', '0', 'ra', NOW_S, 'ua', NOW_S)
    redis.call('HDEL', key, 'cr', 'fa', 'lo', 'lt', 'le')
    make_ready(id, f[2], tonumber(f[3]), NOW)
    woken[f[2]] = true
    done[#done + 1] = id
  end
end
for queue in pairs(woken) do wake(queue) end
flush_counts()
return done
