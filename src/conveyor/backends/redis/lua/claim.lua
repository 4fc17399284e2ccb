-- Claim, after completing the jobs a worker hands back in the same call. ARGV[3] worker,
-- ARGV[4] token base, ARGV[5] lease micros, ARGV[6] limit, ARGV[7] how many due
-- scheduled/retrying jobs to move into the ready set per queue, ARGV[8] standby token or ''
-- and ARGV[9] its time to live in ms (see the prelude's standing claims: registered when
-- fewer than limit jobs are claimed), ARGV[10] n, then n completion triples (id, token,
-- result JSON), then the queues (distinct). Returns, JSON-encoded (one bulk string parses
-- far faster than nested replies), {now, lost ids, {id, token, fields}...} with the claimed
-- jobs in claim order.
local worker, tbase = ARGV[3], ARGV[4]
local expires = fmt(NOW + tonumber(ARGV[5]))
local limit, bound = tonumber(ARGV[6]), tonumber(ARGV[7])
local standby = ARGV[8]
local qfirst = 11 + 3 * tonumber(ARGV[10])
local lost = complete_triples(11, qfirst - 1)
local cands = {}
for qi = qfirst, (limit > 0 and #ARGV or 0) do
  local queue = ARGV[qi]
  if not paused(queue) then
    promote_due(queue, bound)
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
  out[#out + 1] = claim_member(cands[k][2], cands[k][3], worker, tbase .. '.' .. k, expires)
end
if standby ~= '' and limit > 0 and #out - 2 < limit then
  local queues = {}
  for qi = qfirst, #ARGV do queues[#queues + 1] = ARGV[qi] end
  local key = P .. ':sb:' .. standby
  redis.call('HSET', key, 'w', worker, 'l', ARGV[5], 'q', cjson.encode(queues))
  redis.call('PEXPIRE', key, ARGV[9])
  for _, queue in ipairs(queues) do
    local list = P .. ':sbq:' .. queue
    redis.call('RPUSH', list, standby)
    -- the list outlives its longest registration (an expired entry is skipped, then popped)
    if redis.call('PTTL', list) < tonumber(ARGV[9]) then redis.call('PEXPIRE', list, ARGV[9]) end
  end
end
flush_counts()
return cjson.encode(out)
