-- Cancel one job. ARGV[3] id. Returns, JSON-encoded, {'ok', fields}, {'notfound'} or {'invalid', status}.
local id = ARGV[3]
local key = jkey(id)
local f = redis.call('HMGET', key, 's', 'q', 'ra')
local status = f[1]
if not status then return cjson.encode({'notfound'}) end
if status == 'scheduled' or status == 'queued' or status == 'retrying' then
  unwait(id, f[2], tonumber(f[3]))
  finish(id, key, f[2], status, 'cancelled')
elseif status == 'running' then
  redis.call('HSET', key, 'cr', '1', 'ua', NOW_S)
else
  return cjson.encode({'invalid', status})
end
flush_counts()
return cjson.encode({'ok', redis.call('HGETALL', key)})
