-- Enqueue a batch. ARGV[3] guard token, ARGV[4] role: '' (the whole batch in this call) or
-- first/next/last for a batch split in chunks inside one MULTI: the first chunk checks depth
-- for the whole batch and sets the guard; later chunks run only if the guard is set, so
-- the batch stays all-or-nothing. ARGV[5] m, then m pairs (queue, jobs in later chunks),
-- then n and n jobs of 11 fields: id queue kind payload priority run_at delay max_attempts
-- timeout idempotency_key trace ('' = absent). Returns, JSON-encoded, {now, per job: run_at string when
-- created, or {id, fields} of the stored job when it already existed} or {'queuefull', q, max}.
local guard, role = ARGV[3], ARGV[4]
local gkey = P .. ':guard:' .. guard
if (role == 'next' or role == 'last') and redis.call('EXISTS', gkey) == 0 then
  return cjson.encode({'skipped'})
end
local i = 5
local later = {}
for _ = 1, tonumber(ARGV[i]) do
  later[ARGV[i + 1]] = tonumber(ARGV[i + 2])
  i = i + 2
end
i = i + 1
local n = tonumber(ARGV[i])
local base = i + 1
local F = 11

local existing, seen_key, seen_id, adding = {}, {}, {}, {}
for j = 0, n - 1 do
  local o = base + j * F
  local id, queue, ikey = ARGV[o], ARGV[o + 1], ARGV[o + 9]
  local dup = false
  if ikey ~= '' then dup = seen_key[ikey] or redis.call('HGET', P .. ':ikey', ikey) end
  if not dup and (seen_id[id] or redis.call('EXISTS', jkey(id)) == 1) then dup = id end
  if dup then
    existing[j] = dup
  else
    if ikey ~= '' then seen_key[ikey] = id end
    seen_id[id] = true
    adding[queue] = (adding[queue] or 0) + 1
  end
end
for queue, k in pairs(later) do adding[queue] = (adding[queue] or 0) + k end
for queue, k in pairs(adding) do
  local max = redis.call('HGET', P .. ':qs:' .. queue, 'max_depth')
  if max and max ~= '' then
    local c = redis.call('HMGET', COUNTS, 'scheduled:' .. queue, 'queued:' .. queue,
      'retrying:' .. queue)
    local waiting = (tonumber(c[1]) or 0) + (tonumber(c[2]) or 0) + (tonumber(c[3]) or 0)
    if waiting + k > tonumber(max) then
      if role == 'last' then redis.call('DEL', gkey) end
      return cjson.encode({'queuefull', queue, max})
    end
  end
end
if role == 'first' then redis.call('SET', gkey, '1', 'EX', 300) end
if role == 'last' then redis.call('DEL', gkey) end

-- A single job ready now, for a queue with a live standing claim and no job ready before
-- it (due scheduled ones promoted first): it is the queue's best job, so it is stored
-- claimed by that standing claim and handed over at once. The same outcome as storing it
-- queued and letting wake() claim it, in about ten commands fewer; the queue is not
-- published, since no job is left ready in it. Returns the claim's token and registration.
local function standby_for_new(queue)
  if redis.call('EXISTS', P .. ':sbq:' .. queue) == 0 or paused(queue) then return nil end
  promote_due(queue, HANDOFF_PROMOTE)
  if redis.call('ZCARD', P .. ':ready:' .. queue) > 0 then return nil end
  return take_standby(queue)
end

local out = {NOW_S}
local woken, known = {}, {}
for j = 0, n - 1 do
  local o = base + j * F
  if existing[j] then
    out[#out + 1] = {existing[j], redis.call('HGETALL', jkey(existing[j]))}
  else
    local id, queue, priority = ARGV[o], ARGV[o + 1], ARGV[o + 4]
    local run_at = NOW
    if ARGV[o + 5] ~= '' then run_at = tonumber(ARGV[o + 5])
    elseif ARGV[o + 6] ~= '' then run_at = NOW + tonumber(ARGV[o + 6]) end
    local status = 'scheduled'
    if run_at <= NOW then status = 'queued'; run_at = NOW end
    local token, reg
    if n == 1 and status == 'queued' then token, reg = standby_for_new(queue) end
    local key = jkey(id)
    local f = {'q', queue, 'k', ARGV[o + 2], 'p', ARGV[o + 3], 's', token and 'running' or status,
      'pr', priority, 'ra', fmt(run_at), 'a', token and '1' or '0', 'ma', ARGV[o + 7],
      'ca', NOW_S, 'ua', NOW_S}
    if ARGV[o + 8] ~= '' then f[#f + 1] = 'to'; f[#f + 1] = ARGV[o + 8] end
    if ARGV[o + 9] ~= '' then
      f[#f + 1] = 'ik'; f[#f + 1] = ARGV[o + 9]
      redis.call('HSET', P .. ':ikey', ARGV[o + 9], id)
    end
    if ARGV[o + 10] ~= '' then f[#f + 1] = 'tr'; f[#f + 1] = ARGV[o + 10] end
    if token then  -- claimed by the standing claim, as claim_member would, and handed over
      local lease, expires = token .. '.h', fmt(NOW + tonumber(reg[2]))
      for _, v in ipairs({'sa', NOW_S, 'lo', reg[1], 'lt', lease, 'le', expires}) do
        f[#f + 1] = v
      end
      redis.call('HSET', key, unpack(f))
      index_status(id, queue, nil, 'running')
      redis.call('ZADD', RUNNING, expires, id)
      local ho = P .. ':ho:' .. token
      redis.call('RPUSH', ho, cjson.encode({id, lease, f}))
      redis.call('PEXPIRE', ho, HANDOFF_KEEP_MS)
    else
      redis.call('HSET', key, unpack(f))
      index_status(id, queue, nil, status)
      if status == 'queued' then
        make_ready(id, queue, tonumber(priority), run_at)
        woken[queue] = true
      else
        schedule(id, queue, run_at)
      end
    end
    if not known[queue] then
      redis.call('SADD', P .. ':queues', queue)
      known[queue] = true
    end
    out[#out + 1] = fmt(run_at)
  end
end
for queue in pairs(woken) do wake(queue) end
flush_counts()
return cjson.encode(out)
