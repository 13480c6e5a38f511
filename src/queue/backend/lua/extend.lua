-- ARGV: prefix, lease_ms, then id, attempt pairs. Returns the ids whose lease this attempt still holds.
local lease = tonumber(ARGV[2])
local now = now_ms()
local out = {}
for i = 3, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local k = tkey(id)
  if holds(k, attempt) then
    redis.call('HSET', k, 'lease_until', now + lease)
    redis.call('ZADD', p .. 'leases', now + lease, id)
    out[#out + 1] = tonumber(id)
  end
end
return out
