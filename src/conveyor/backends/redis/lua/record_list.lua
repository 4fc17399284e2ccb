-- Every record of a namespace, sorted by key, read at one instant. ARGV[3] namespace
-- (escaped: no ':'). Returns a flat list {key, value, version, updated_at, ...}.
local ns = ARGV[3]
local out = {}
for _, key in ipairs(redis.call('ZRANGE', P .. ':recs:' .. ns, 0, -1)) do
  local f = redis.call('HMGET', P .. ':rec:' .. ns .. ':' .. key, 'value', 'version', 'updated_at')
  if f[1] then
    out[#out + 1] = key
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
    out[#out + 1] = f[3]
  end
end
return out
