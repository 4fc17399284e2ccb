-- Counts per queue and status from the counters (no scan). Returns, per known queue:
-- {queue, {7 counts}, paused, max_depth, has settings, oldest claimable run_at or '',
-- completed last minute, failed last minute}.
local STATUSES = {'scheduled', 'queued', 'running', 'retrying', 'completed', 'failed',
  'cancelled'}
local minute_ago = fmt(NOW - 60000000)
local out = {NOW_S}
for _, queue in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
  local fields = {}
  for k, s in ipairs(STATUSES) do fields[k] = s .. ':' .. queue end
  local counts = redis.call('HMGET', COUNTS, unpack(fields))
  for k = 1, #counts do counts[k] = tonumber(counts[k]) or 0 end
  local qs = P .. ':qs:' .. queue
  local settings = redis.call('HMGET', qs, 'paused', 'max_depth')
  local oldest = nil
  local first = redis.call('ZRANGEBYSCORE', P .. ':sched:' .. queue, '-inf', NOW_S,
    'LIMIT', 0, 1, 'WITHSCORES')
  if #first > 0 then oldest = tonumber(first[2]) end
  -- The ready set is ordered by priority first: visit the head of each priority level.
  local rk = P .. ':ready:' .. queue
  local head = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
  local levels = 0
  while #head > 0 and levels <= 2001 do
    local run_at = tonumber(string.sub(head[1], 1, 16))
    if not oldest or run_at < oldest then oldest = run_at end
    head = redis.call('ZRANGE', rk, '(' .. head[2], '+inf', 'BYSCORE', 'LIMIT', 0, 1,
      'WITHSCORES')
    levels = levels + 1
  end
  out[#out + 1] = {queue, counts, settings[1] or '0', settings[2] or '',
    redis.call('EXISTS', qs), oldest and fmt(oldest) or '',
    redis.call('ZCOUNT', P .. ':fin:completed:' .. queue, minute_ago, '+inf'),
    redis.call('ZCOUNT', P .. ':fin:failed:' .. queue, minute_ago, '+inf')}
end
return out
