-- Complete many jobs. Triples (id, token, result JSON). Returns the ids whose lease was lost.
local lost = {}
for i = 3, #ARGV, 3 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = jkey(id)
  local f = redis.call('HMGET', key, 's', 'lt', 'q')
  if f[1] == 'running' and f[2] == token then
    redis.call('HSET', key, 'r', ARGV[i + 2])
    finish(id, key, f[3], 'running', 'completed')
  else
    lost[#lost + 1] = id
  end
end
flush_counts()
return lost
