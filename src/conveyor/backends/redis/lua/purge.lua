-- Retention. ARGV[3] limit, then pairs (final status, age in micros). Deletes jobs that
-- finished before now - age, with their logs and index entries. Returns how many.
local left = tonumber(ARGV[3])
local queues = redis.call('SMEMBERS', P .. ':queues')
local deleted = 0
for i = 4, #ARGV, 2 do
  local status = ARGV[i]
  local cutoff = '(' .. fmt(NOW - tonumber(ARGV[i + 1]))
  for _, queue in ipairs(queues) do
    if left <= 0 then
      flush_counts()
      return deleted
    end
    local fin = P .. ':fin:' .. status .. ':' .. queue
    local ids = redis.call('ZRANGEBYSCORE', fin, '-inf', cutoff, 'LIMIT', 0, left)
    for _, id in ipairs(ids) do
      local key = jkey(id)
      local ikey = redis.call('HGET', key, 'ik')
      if ikey and redis.call('HGET', P .. ':ikey', ikey) == id then
        redis.call('HDEL', P .. ':ikey', ikey)
      end
      redis.call('DEL', key, P .. ':log:' .. id)
      redis.call('ZREM', fin, id)
      index_status(id, queue, status, nil)
      deleted = deleted + 1
      left = left - 1
    end
  end
end
flush_counts()
return deleted
