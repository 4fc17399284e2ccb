-- End a failed attempt. ARGV[3] id, [4] token, [5] error entry or '', [6] retry after
-- (micros) or '' for the dead-letter queue, [7] '1' to charge the attempt.
-- Returns, JSON-encoded, {'ok', fields} or {'lost'}.
local id, token, entry, retry, charge = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local key = jkey(id)
local f = redis.call('HMGET', key, 's', 'lt', 'q', 'cr', 'a')
if f[1] ~= 'running' or f[2] ~= token then return cjson.encode({'lost'}) end
local queue = f[3]
if entry ~= '' then append_error(key, entry) end
if charge ~= '1' and tonumber(f[5]) > 0 then redis.call('HINCRBY', key, 'a', -1) end
if f[4] == '1' then
  finish(id, key, queue, 'running', 'cancelled')
elseif retry ~= '' then
  local run_at = NOW + tonumber(retry)
  index_status(id, queue, 'running', 'retrying')
  redis.call('HSET', key, 's', 'retrying', 'ra', fmt(run_at), 'ua', NOW_S)
  drop_lease(key, id)
  schedule(id, queue, run_at)
else
  finish(id, key, queue, 'running', 'failed')
end
flush_counts()
return cjson.encode({'ok', redis.call('HGETALL', key)})
