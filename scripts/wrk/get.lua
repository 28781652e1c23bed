-- wrk script: GET /analytics for the current hour (95 %) or one of the previous 24 (5 %),
-- `depth` requests pipelined per write, from 256 pre-built batches.
--   wrk -t1 -c32 -d5s -s scripts/wrk/get.lua http://127.0.0.1:8080/ -- 16
local depth = 1
local now = os.time() * 1000

local function one()
  local ts = now
  if math.random() < 0.05 then ts = now - math.random(24) * 3600000 end
  return wrk.format("GET", "/analytics?timestamp=" .. ts)
end

-- Batches are built once, in init, and sent in turn: building them per request would make
-- wrk's single Lua thread the bottleneck at high rates.
local batches = {}
local next_batch = 0

function init(args)
  depth = tonumber(args[1] or "1")
  for b = 1, 256 do
    local r = {}
    for i = 1, depth do r[i] = one() end
    batches[b] = table.concat(r)
  end
end

function request()
  next_batch = next_batch % #batches + 1
  return batches[next_batch]
end
