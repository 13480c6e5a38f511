-- ARGV: prefix, done retention ms, dead retention ms, batch. Promotes due tasks, requeues expired
-- leases, prunes finished tasks past retention (a batch at a time). Returns {requeued, dead, pruned}.
local now = now_ms()
local batch = tonumber(ARGV[4])
promote('delayed', now, batch)
promote('retry', now, batch)
local reaped = reap(now, batch)
local pruned = 0
for _, spec in ipairs({{'done', tonumber(ARGV[2])}, {'dead', tonumber(ARGV[3])}}) do
  local zset = p .. spec[1]
  local old = redis.call('ZRANGE', zset, '-inf', '(' .. fmt(now - spec[2]), 'BYSCORE', 'LIMIT', 0, batch)
  for _, id in ipairs(old) do
    local k = tkey(id)
    local key = redis.call('HGET', k, 'idempotency_key')
    if key and redis.call('GET', p .. 'idem:' .. key) == id then
      redis.call('DEL', p .. 'idem:' .. key)
    end
    redis.call('DEL', k)
    redis.call('ZREM', zset, id)
    count(spec[1], -1)
    pruned = pruned + 1
  end
end
flush()
return {reaped[1], reaped[2], pruned}
