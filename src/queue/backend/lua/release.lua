-- ARGV: prefix, then id, attempt pairs. Hands tasks back without using up an attempt. Returns how many.
local now = now_ms()
local released = 0
for i = 2, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local k = tkey(id)
  if holds(k, attempt) then
    redis.call('HINCRBY', k, 'attempt_base', 1)
    redis.call('HSET', k, 'state', 'queued', 'run_at', now, 'updated_at', now)
    redis.call('HDEL', k, 'lease_until')
    redis.call('ZREM', p .. 'leases', id)
    redis.call('RPUSH', p .. 'ready:' .. redis.call('HGET', k, 'priority'), id)
    count('running', -1)
    count('queued', 1)
    released = released + 1
  end
end
if released > 0 then
  redis.call('PUBLISH', p .. 'wake', '')
end
flush()
return released
