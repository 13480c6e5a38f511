-- ARGV: prefix, worker, max, lease_ms. Returns {id, type, payload, attempt, attempt_in_budget, max_attempts} per task.
local worker, max, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
promote('delayed', now, 1000)
promote('retry', now, 1000)
local out = {}
for prio = 9, 0, -1 do
  if #out >= max then
    break
  end
  local ids = redis.call('RPOP', p .. 'ready:' .. prio, max - #out)
  if ids then
    for _, id in ipairs(ids) do
      local k = tkey(id)
      local v = redis.call('HMGET', k, 'type', 'payload', 'attempts', 'attempt_base', 'max_attempts', 'state')
      if v[1] and (v[6] == 'queued' or v[6] == 'failed') then
        local attempt = (tonumber(v[3]) or 0) + 1
        redis.call('HSET', k, 'state', 'running', 'attempts', attempt, 'worker', worker,
          'lease_until', now + lease, 'started_at', now, 'updated_at', now)
        redis.call('ZADD', p .. 'leases', now + lease, id)
        count(v[6], -1)
        count('running', 1)
        out[#out + 1] = {tonumber(id), v[1], v[2], attempt, attempt - (tonumber(v[4]) or 0), tonumber(v[5])}
      end
    end
  end
end
flush()
return out
