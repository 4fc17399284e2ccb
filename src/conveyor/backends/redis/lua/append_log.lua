-- Append log lines. ARGV[3] job id, ARGV[4..] lines, stored as "<micros> <line>"; a line's
-- seq is its position in the list. Returns the new length, or -1 when the job is unknown.
local id = ARGV[3]
if redis.call('EXISTS', jkey(id)) == 0 then return -1 end
local lines = {}
for i = 4, #ARGV do lines[#lines + 1] = NOW_S .. ' ' .. ARGV[i] end
if #lines == 0 then return redis.call('LLEN', P .. ':log:' .. id) end
return redis.call('RPUSH', P .. ':log:' .. id, unpack(lines))
