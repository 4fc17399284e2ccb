-- Withdraw a standing claim (see the prelude). ARGV[3] its token, ARGV[4] '1' to push a
-- 'wake' sentinel so that the worker's BLPOP on ho:<token> returns now. Returns what was
-- handed meanwhile (at most one job, JSON-encoded as in the claim reply).
local token = ARGV[3]
local queues = redis.call('HGET', P .. ':sb:' .. token, 'q')
if queues then unregister(token, queues, nil) end
local ho = P .. ':ho:' .. token
local items = redis.call('LRANGE', ho, 0, -1)
redis.call('DEL', ho)
if ARGV[4] == '1' then
  redis.call('RPUSH', ho, 'wake')
  redis.call('PEXPIRE', ho, 5000) -- a sentinel nobody pops is gone soon
end
return items
