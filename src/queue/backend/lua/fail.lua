-- ARGV: prefix, then id, attempt, error, backoff_ms quadruples. Returns 'failed', 'dead' or 'fenced' per task.
local now = now_ms()
local out = {}
for i = 2, #ARGV, 4 do
  local id, attempt, err, backoff = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local k = tkey(id)
  if holds(k, attempt) then
    local v = redis.call('HMGET', k, 'attempts', 'attempt_base', 'max_attempts')
    redis.call('HDEL', k, 'lease_until')
    redis.call('ZREM', p .. 'leases', id)
    count('running', -1)
    if tonumber(v[1]) - (tonumber(v[2]) or 0) >= tonumber(v[3]) then
      redis.call('HSET', k, 'state', 'dead', 'last_error', err, 'finished_at', now, 'updated_at', now)
      redis.call('ZADD', p .. 'dead', now, id)
      count('dead', 1)
      out[#out + 1] = 'dead'
    else
      redis.call('HSET', k, 'state', 'failed', 'last_error', err, 'run_at', now + backoff, 'updated_at', now)
      redis.call('ZADD', p .. 'retry', now + backoff, id)
      count('failed', 1)
      out[#out + 1] = 'failed'
    end
  else
    out[#out + 1] = 'fenced'
  end
end
flush()
return out
