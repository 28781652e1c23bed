-- wrk script: the hourtally mix. `get` sends GET /analytics, `post` sends POST /analytics with a
-- random user of 100 000 and half clicks; either for the current hour (95 %) or one of the
-- previous 24 (5 %), `depth` requests pipelined per write, from 256 pre-built batches.
--   wrk -t1 -c32 -d5s -s scripts/wrk/mix.lua http://127.0.0.1:8080/ -- post 16
-- Batches are built once, in init: building them per write makes wrk's single Lua thread the
-- bottleneck at high rates.
local batches = {}
local next_batch = 0

local function one(kind, now)
  local ts = now
  if math.random() < 0.05 then ts = now - math.random(24) * 3600000 end
  if kind == "get" then
    return wrk.format("GET", "/analytics?timestamp=" .. ts)
  end
  local what = "click"
  if math.random() < 0.5 then what = "impression" end
  return wrk.format("POST", "/analytics?timestamp=" .. ts .. "&user=u" .. math.random(100000) .. "&" .. what)
end

function init(args)
  local kind = args[1] or "get"
  local depth = tonumber(args[2] or "1")
  local now = os.time() * 1000
  for b = 1, 256 do
    local r = {}
    for i = 1, depth do r[i] = one(kind, now) end
    batches[b] = table.concat(r)
  end
end

function request()
  next_batch = next_batch % #batches + 1
  return batches[next_batch]
end
