-- ARGV: prefix, n, then per task: type, payload, delay_ms, max_attempts, priority, idempotency key ('' = none).
-- Returns per task {id, created (1/0), state}.
local n = tonumber(ARGV[2])
local now = now_ms()
local out = {}
local wake = false
for i = 0, n - 1 do
  local b = 3 + i * 6
  local kind, payload, delay, maxa, prio, idem = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local found = nil
  if idem ~= '' then
    local existing = redis.call('GET', p .. 'idem:' .. idem)
    if existing then
      local state = redis.call('HGET', tkey(existing), 'state')
      if state then
        found = {tonumber(existing), 0, state}
      end
    end
  end
  if found then
    out[#out + 1] = found
  else
    local id = redis.call('INCR', p .. 'seq')
    local run_at = now + delay
    local k = tkey(id)
    -- attempts, attempt_base and requeued start absent (0); updated_at absent = created_at.
    redis.call('HSET', k, 'type', kind, 'payload', payload, 'state', 'queued', 'priority', prio,
      'max_attempts', maxa, 'created_at', now, 'run_at', run_at)
    if idem ~= '' then
      redis.call('SET', p .. 'idem:' .. idem, id)
      redis.call('HSET', k, 'idempotency_key', idem)
    end
    if delay > 0 then
      redis.call('ZADD', p .. 'delayed', run_at, id)
    else
      redis.call('LPUSH', p .. 'ready:' .. prio, id)
      wake = true
    end
    count('queued', 1)
    out[#out + 1] = {id, 1, 'queued'}
  end
end
if wake then
  redis.call('PUBLISH', p .. 'wake', '')
end
flush()
return out
