-- Claim, after completing the jobs a worker hands back in the same call. ARGV[3] worker,
-- ARGV[4] token base, ARGV[5] lease micros, ARGV[6] limit, ARGV[7] how many due
-- scheduled/retrying jobs to move into the ready set per queue, ARGV[8] n, then n completion
-- triples (id, token, result JSON), then the queues (distinct). Returns, JSON-encoded (one
-- bulk string parses far faster than nested replies), {now, lost ids, {id, token, fields}...}
-- with the claimed jobs in claim order.
local worker, tbase = ARGV[3], ARGV[4]
local expires = fmt(NOW + tonumber(ARGV[5]))
local limit, bound = tonumber(ARGV[6]), tonumber(ARGV[7])
local qfirst = 9 + 3 * tonumber(ARGV[8])
local lost = complete_triples(9, qfirst - 1)
local cands = {}
for qi = qfirst, (limit > 0 and #ARGV or 0) do
  local queue = ARGV[qi]
  if redis.call('HGET', P .. ':qs:' .. queue, 'paused') ~= '1' then
    local sched = P .. ':sched:' .. queue
    local due = redis.call('ZRANGEBYSCORE', sched, '-inf', NOW_S, 'LIMIT', 0, bound)
    for _, id in ipairs(due) do
      local f = redis.call('HMGET', jkey(id), 'pr', 'ra')
      redis.call('ZREM', sched, id)
      if f[1] then make_ready(id, queue, tonumber(f[1]), tonumber(f[2])) end
    end
    local top = redis.call('ZRANGE', P .. ':ready:' .. queue, 0, limit - 1, 'WITHSCORES')
    for j = 1, #top, 2 do cands[#cands + 1] = {tonumber(top[j + 1]), top[j], queue} end
  end
end
if #ARGV > qfirst then
  -- Members are fixed-width (16 digits | uuid), so string order is run_at then id order.
  table.sort(cands, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
end
local out = {NOW_S, lost}
for k = 1, math.min(limit, #cands) do
  local member, queue = cands[k][2], cands[k][3]
  local id = string.sub(member, 18)
  local key = jkey(id)
  redis.call('ZREM', P .. ':ready:' .. queue, member)
  local token = tbase .. '.' .. k
  index_status(id, queue, redis.call('HGET', key, 's'), 'running')
  redis.call('HINCRBY', key, 'a', 1)
  redis.call('HSET', key, 's', 'running', 'sa', NOW_S, 'lo', worker, 'lt', token,
    'le', expires, 'ua', NOW_S)
  redis.call('ZADD', RUNNING, expires, id)
  out[#out + 1] = {id, token, redis.call('HGETALL', key)}
end
flush_counts()
return cjson.encode(out)
