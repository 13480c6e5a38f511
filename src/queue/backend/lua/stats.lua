-- ARGV: prefix. Returns {queued, running, done, failed, dead, scheduled, oldest_ready_age_ms, done_last_minute}.
local now = now_ms()
local c = redis.call('HMGET', p .. 'counts', 'queued', 'running', 'done', 'failed', 'dead')
local future = '(' .. fmt(now)
local scheduled = redis.call('ZCOUNT', p .. 'delayed', future, '+inf') + redis.call('ZCOUNT', p .. 'retry', future, '+inf')
local oldest = -1
for prio = 0, 9 do
  local id = redis.call('LINDEX', p .. 'ready:' .. prio, -1)
  if id then
    local run_at = tonumber(redis.call('HGET', tkey(id), 'run_at'))
    if run_at and (oldest < 0 or run_at < oldest) then
      oldest = run_at
    end
  end
end
for _, zset in ipairs({'delayed', 'retry'}) do
  local first = redis.call('ZRANGE', p .. zset, 0, 0, 'WITHSCORES')
  if first[2] then
    local run_at = tonumber(first[2])
    if run_at <= now and (oldest < 0 or run_at < oldest) then
      oldest = run_at
    end
  end
end
local age = 0
if oldest >= 0 then
  age = now - oldest
end
local recent = redis.call('ZCOUNT', p .. 'done', fmt(now - 60000), '+inf')
return {tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[4]) or 0,
  tonumber(c[5]) or 0, scheduled, age, recent}
