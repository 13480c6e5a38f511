-- ARGV: prefix, then id, attempt, result triples. Returns 1 (accepted) or 0 (fenced) per task.
local now = now_ms()
local out = {}
for i = 2, #ARGV, 3 do
  local id, attempt, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local k = tkey(id)
  if holds(k, attempt) then
    redis.call('HSET', k, 'state', 'done', 'result', result, 'finished_at', now, 'updated_at', now)
    redis.call('HDEL', k, 'lease_until')
    redis.call('ZREM', p .. 'leases', id)
    redis.call('ZADD', p .. 'done', now, id)
    count('running', -1)
    count('done', 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
flush()
return out
