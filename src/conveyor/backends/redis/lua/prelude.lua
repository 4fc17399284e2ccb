-- Prelude shared by every Conveyor script (scripts.py prepends it to each script body).
-- ARGV[1]: the key prefix. ARGV[2]: now in microseconds since the epoch, or '' to read the
-- server's TIME (production: one clock for every worker). Keys are built from the prefix,
-- so a Redis Cluster needs the whole prefix inside a hash tag, e.g. prefix={conveyor}.
--
-- Job hash fields: q queue, k kind, p payload, s status, pr priority, ra run_at, a attempts,
-- ma max_attempts, ca created_at, ua updated_at, to timeout, ik idempotency key, lo lease
-- owner, lt lease token, le lease expiry, sa started_at, fa finished_at, r result, e errors
-- (JSON objects joined by commas), pg progress, tr trace, rs rescues, cr cancel requested.
-- Every time is integer microseconds; numbers are formatted with fmt(), never tostring(),
-- which would print 1.9e+15.
local P = ARGV[1]
local NOW
if ARGV[2] == '' then
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  NOW = tonumber(ARGV[2])
end

local function fmt(n) return string.format('%.0f', n) end
local NOW_S = fmt(NOW)
local COUNTS = P .. ':counts'
local RUNNING = P .. ':running'

local function jkey(id) return P .. ':job:' .. id end

-- Per-status id indexes (score 0, ordered by id) and the per queue/status counters move
-- together, so stats never scan. Counter changes are summed in DELTAS and written once per
-- script by flush_counts(), which every script that moves a job between statuses calls
-- before it returns (a test compares counters with the indexes after every verb).
local DELTAS = {}
local function index_status(id, queue, from, to)
  if from then
    redis.call('ZREM', P .. ':st:' .. from, id)
    local field = from .. ':' .. queue
    DELTAS[field] = (DELTAS[field] or 0) - 1
  end
  if to then
    redis.call('ZADD', P .. ':st:' .. to, 0, id)
    local field = to .. ':' .. queue
    DELTAS[field] = (DELTAS[field] or 0) + 1
  end
end

local function flush_counts()
  for field, delta in pairs(DELTAS) do
    if delta ~= 0 then redis.call('HINCRBY', COUNTS, field, delta) end
  end
  DELTAS = {}
end

-- Ready set of a queue: score -priority (exact integers), member run_at (16 digits) | id,
-- so ZRANGE yields priority desc, then run_at asc, then id asc, exactly.
local function ready_member(run_at, id) return string.format('%016.0f', run_at) .. '|' .. id end

local function make_ready(id, queue, priority, run_at)
  redis.call('ZADD', P .. ':ready:' .. queue, -priority, ready_member(run_at, id))
end

local function schedule(id, queue, run_at)
  redis.call('ZADD', P .. ':sched:' .. queue, fmt(run_at), id)
end

local function unwait(id, queue, run_at)
  redis.call('ZREM', P .. ':ready:' .. queue, ready_member(run_at, id))
  redis.call('ZREM', P .. ':sched:' .. queue, id)
end

-- Due scheduled/retrying jobs of a queue join its ready set (at most ``bound``); their
-- status changes when they are claimed.
local function promote_due(queue, bound)
  local sched = P .. ':sched:' .. queue
  local due = redis.call('ZRANGEBYSCORE', sched, '-inf', NOW_S, 'LIMIT', 0, bound)
  for _, id in ipairs(due) do
    local f = redis.call('HMGET', jkey(id), 'pr', 'ra')
    redis.call('ZREM', sched, id)
    if f[1] then make_ready(id, queue, tonumber(f[1]), tonumber(f[2])) end
  end
end

local function paused(queue) return redis.call('HGET', P .. ':qs:' .. queue, 'paused') == '1' end

-- Claim one ready-set member for ``worker``: running, attempts + 1, a lease until
-- ``expires``. Returns {id, token, fields}, as the claim reply and a handoff carry it.
-- The hash is read once, before the write, and the reply's fields are the ones read with
-- the written ones put in (six Redis commands per job, where reading the status, counting
-- the attempt and reading the hash back took eight).
local function claim_member(member, queue, worker, token, expires)
  local id = string.sub(member, 18)
  local key = jkey(id)
  redis.call('ZREM', P .. ':ready:' .. queue, member)
  local fields = redis.call('HGETALL', key)
  local from, attempts = nil, 0
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 's' then
      from = fields[i + 1]
    elseif name == 'a' then
      attempts = tonumber(fields[i + 1])
    end
  end
  local set = {'s', 'running', 'a', fmt(attempts + 1), 'sa', NOW_S, 'lo', worker, 'lt', token,
    'le', expires, 'ua', NOW_S}
  index_status(id, queue, from, 'running')
  redis.call('HSET', key, unpack(set))
  redis.call('ZADD', RUNNING, expires, id)
  local at = {}
  for i = 1, #fields, 2 do at[fields[i]] = i + 1 end
  for i = 1, #set, 2 do
    local slot = at[set[i]]
    if slot then
      fields[slot] = set[i + 1]
    else
      fields[#fields + 1] = set[i]
      fields[#fields + 1] = set[i + 1]
    end
  end
  return {id, token, fields}
end

-- Standing claims (handoff). A worker whose claim found fewer jobs than it has free slots
-- registers a standing claim for one job under a fresh token: the hash sb:<token> (w worker,
-- l lease micros, q its queues as JSON) with a short time to live, and the token in the list
-- sbq:<queue> of each of its queues. It then blocks in BLPOP on ho:<token>. wake() claims the
-- best ready job for the first live standing claim of the queue and pushes it there, so the
-- job reaches an idle worker in the same server iteration as the write that made it ready,
-- without a claim round trip. A standing claim takes one job and is gone; an expired one (a
-- worker that died standing by) is skipped.
local function unregister(token, queues_json, except)
  redis.call('DEL', P .. ':sb:' .. token)
  for _, q in ipairs(cjson.decode(queues_json)) do
    if q ~= except then redis.call('LREM', P .. ':sbq:' .. q, 0, token) end
  end
end

local function take_standby(queue)
  local list = P .. ':sbq:' .. queue
  while true do
    local token = redis.call('LPOP', list)
    if not token then return nil end
    local reg = redis.call('HMGET', P .. ':sb:' .. token, 'w', 'l', 'q')
    if reg[1] then
      unregister(token, reg[3], queue)
      return token, reg
    end
  end
end

local HANDOFF_PROMOTE = 1000
local HANDOFF_KEEP_MS = 60000 -- a handed job nobody popped: its lease expires long before

-- Jobs may have become ready in ``queue``: hand them to standing claims, best first, then
-- PUBLISH the queue for pub/sub waiters (wait_for_work) and the workers claiming the rest.
local function wake(queue)
  local list = P .. ':sbq:' .. queue
  if redis.call('EXISTS', list) == 1 and not paused(queue) then
    promote_due(queue, HANDOFF_PROMOTE)
    local ready = P .. ':ready:' .. queue
    while true do
      local top = redis.call('ZRANGE', ready, 0, 0)
      if #top == 0 then break end
      local token, reg = take_standby(queue)
      if not token then break end
      local item = claim_member(top[1], queue, reg[1], token .. '.h', fmt(NOW + tonumber(reg[2])))
      local ho = P .. ':ho:' .. token
      redis.call('RPUSH', ho, cjson.encode(item))
      redis.call('PEXPIRE', ho, HANDOFF_KEEP_MS)
    end
  end
  redis.call('PUBLISH', P .. ':notify', queue)
end

local function append_error(key, entry)
  local old = redis.call('HGET', key, 'e')
  if old then entry = old .. ',' .. entry end
  redis.call('HSET', key, 'e', entry)
end

local function drop_lease(key, id)
  redis.call('HDEL', key, 'lo', 'lt', 'le')
  redis.call('ZREM', RUNNING, id)
end

-- Any status -> a final one: indexes, finished set (for retention), lease cleared, and
-- the result (JSON) when one is given.
local function finish(id, key, queue, from, to, result)
  index_status(id, queue, from, to)
  redis.call('ZADD', P .. ':fin:' .. to .. ':' .. queue, NOW_S, id)
  if result then
    redis.call('HSET', key, 's', to, 'fa', NOW_S, 'ua', NOW_S, 'r', result)
  else
    redis.call('HSET', key, 's', to, 'fa', NOW_S, 'ua', NOW_S)
  end
  drop_lease(key, id)
end

-- Running (held lease) -> queued now, e.g. release and rescue.
local function back_to_queue(id, key, queue, priority)
  index_status(id, queue, 'running', 'queued')
  redis.call('HSET', key, 's', 'queued', 'ra', NOW_S, 'ua', NOW_S)
  drop_lease(key, id)
  make_ready(id, queue, priority, NOW)
  wake(queue)
end


-- Complete the jobs of the triples (id, token, result JSON) ARGV[first .. last]; returns
-- the ids whose lease was lost (those are left unchanged). Used by complete and claim.
local function complete_triples(first, last)
  local lost = {}
  for i = first, last, 3 do
    local id, token = ARGV[i], ARGV[i + 1]
    local key = jkey(id)
    local f = redis.call('HMGET', key, 's', 'lt', 'q')
    if f[1] == 'running' and f[2] == token then
      finish(id, key, f[3], 'running', 'completed', ARGV[i + 2])
    else
      lost[#lost + 1] = id
    end
  end
  return lost
end
