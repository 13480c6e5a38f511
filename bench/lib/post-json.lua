-- wrk script: POST a unique JSON message per request.
-- usage: wrk -s post-json.lua ... ; set PATH_OVERRIDE with the WRK_PATH env var.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
end

request = function()
  counter = counter + 1
  local body = string.format('{"name":"bench-%d-%d","message":"benchmark message %d"}', thread_id, counter, counter)
  return wrk.format("POST", os.getenv("WRK_PATH") or "/api/messages",
    { ["Content-Type"] = "application/json" }, body)
end
