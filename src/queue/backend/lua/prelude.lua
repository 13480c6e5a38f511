-- Shared by every queue script. ARGV[1] is the key prefix. Times are Redis's own clock, in ms.
-- Keys (prefix p): p.task:<id> (hash), p.ready:<0-9> (lists, LPUSH in, RPOP out),
-- p.delayed and p.retry (sorted sets by run_at), p.leases (sorted set by lease_until),
-- p.done and p.dead (sorted sets by finished_at), p.idem:<key> -> id, p.counts (hash per
-- state), p.seq (ids), channel p.wake (new work).
local p = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%d', n)
end

local task_prefix = p .. 'task:'
local function tkey(id)
  return task_prefix .. id
end

-- Per-state counts change many times per script: add up here, write once with flush().
local deltas = {}
local function count(state, delta)
  deltas[state] = (deltas[state] or 0) + delta
end
local function flush()
  for state, delta in pairs(deltas) do
    if delta ~= 0 then
      redis.call('HINCRBY', p .. 'counts', state, delta)
    end
  end
  deltas = {}
end

-- True when this attempt holds the task: the fencing check of every acknowledgement.
local function holds(k, attempt)
  local v = redis.call('HMGET', k, 'state', 'attempts')
  return v[1] == 'running' and v[2] == attempt
end

-- Moves due tasks of a schedule (delayed or retry) to their ready list. Their state stays
-- (queued, or failed until a worker claims them), as in the PostgreSQL backend.
local function promote(zset, now, limit)
  local due = redis.call('ZRANGE', p .. zset, '-inf', fmt(now), 'BYSCORE', 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', p .. zset, id)
    local prio = redis.call('HGET', tkey(id), 'priority')
    if prio then
      redis.call('LPUSH', p .. 'ready:' .. prio, id)
    end
  end
  return #due
end

-- Tasks whose lease ran out (their worker died or lost Redis): back to the front of the
-- queue, or dead if that was their last attempt.
local function reap(now, limit)
  local expired = redis.call('ZRANGE', p .. 'leases', '-inf', '(' .. fmt(now), 'BYSCORE', 'LIMIT', 0, limit)
  local requeued, dead = 0, 0
  for _, id in ipairs(expired) do
    redis.call('ZREM', p .. 'leases', id)
    local k = tkey(id)
    local v = redis.call('HMGET', k, 'attempts', 'attempt_base', 'max_attempts', 'priority', 'worker', 'state')
    if v[1] and v[6] == 'running' then
      local err = 'lease expired: worker ' .. (v[5] or '?') .. ' stopped renewing it during attempt ' .. v[1]
      redis.call('HDEL', k, 'lease_until')
      count('running', -1)
      if tonumber(v[1]) - (tonumber(v[2]) or 0) >= tonumber(v[3]) then
        redis.call('HSET', k, 'state', 'dead', 'last_error', err, 'finished_at', now, 'run_at', now, 'updated_at', now)
        redis.call('ZADD', p .. 'dead', now, id)
        count('dead', 1)
        dead = dead + 1
      else
        redis.call('HSET', k, 'state', 'queued', 'last_error', err, 'run_at', now, 'updated_at', now)
        redis.call('RPUSH', p .. 'ready:' .. v[4], id)
        count('queued', 1)
        requeued = requeued + 1
      end
    end
  end
  if requeued > 0 then
    redis.call('PUBLISH', p .. 'wake', '')
  end
  return {requeued, dead}
end
