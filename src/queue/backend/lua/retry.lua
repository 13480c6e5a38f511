-- ARGV: prefix, id. Re-queues a dead task with a fresh attempt budget. Returns the state it
-- found ('dead' means it was re-queued), or 'missing'.
local k = tkey(ARGV[2])
local state = redis.call('HGET', k, 'state')
if not state then
  return 'missing'
end
if state ~= 'dead' then
  return state
end
local now = now_ms()
local v = redis.call('HMGET', k, 'attempts', 'priority')
redis.call('HSET', k, 'state', 'queued', 'attempt_base', v[1] or 0, 'run_at', now, 'updated_at', now)
redis.call('HINCRBY', k, 'requeued', 1)
redis.call('HDEL', k, 'finished_at')
redis.call('ZREM', p .. 'dead', ARGV[2])
redis.call('LPUSH', p .. 'ready:' .. v[2], ARGV[2])
count('dead', -1)
count('queued', 1)
flush()
redis.call('PUBLISH', p .. 'wake', '')
return 'dead'
