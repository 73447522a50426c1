-- POST form bodies read from the file named by BENCH_BODIES (one body per line), each used
-- once per thread in turn (a body may carry a one-time client assertion), with the headers
-- named in BENCH_HEADERS ("Name: value" lines separated by "|"). A line may end with a tab and
-- one "Name: value" header of its own (a one-time DPoP proof).
local bodies = {}
local counter = 0
local threads = {}

local function load()
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    bodies[#bodies + 1] = line
  end
end

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  load()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  local extra = os.getenv("BENCH_HEADERS") or ""
  for header in string.gmatch(extra, "[^|]+") do
    local name, value = string.match(header, "^%s*([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
  index = id  -- threads interleave over the bodies so none is used twice
  step = tonumber(os.getenv("BENCH_THREADS") or "1")
end

function request()
  local line = bodies[(index % #bodies) + 1]
  index = index + step
  local body, own = string.match(line, "^([^\t]*)\t(.*)$")
  if body == nil then return wrk.format(nil, nil, nil, line) end
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  local name, value = string.match(own, "^([^:]+):%s*(.*)$")
  headers[name] = value
  return wrk.format(nil, nil, headers, body)
end

statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

-- Machine-readable summary for bench/run.py.
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("BENCH status %d %d\n", status, count))
  end
  io.write(string.format("BENCH latency_us %d %d %d %d\n", latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
  io.write(string.format("BENCH requests %d duration_us %d errors %d\n", summary.requests,
    summary.duration, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout))
end
