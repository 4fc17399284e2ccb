-- Graceful shutdown: pairs (id, token) back to queued, the attempt given back; a job with
-- a cancel request goes to cancelled. Returns the ids whose lease was lost.
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = jkey(id)
  local f = redis.call('HMGET', key, 's', 'lt', 'q', 'cr', 'pr', 'a')
  if f[1] == 'running' and f[2] == token then
    if tonumber(f[6]) > 0 then redis.call('HINCRBY', key, 'a', -1) end
    if f[4] == '1' then
      finish(id, key, f[3], 'running', 'cancelled')
    else
      back_to_queue(id, key, f[3], tonumber(f[5]))
    end
  else
    lost[#lost + 1] = id
  end
end
flush_counts()
return lost
