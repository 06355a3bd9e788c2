-- wrk script for `make bench`: replays pre-signed GitHub deliveries written
-- by `bench-presign ... wrk` (see bench/src/lib.rs for the format).
--
--   BENCH_WRK_TEMPLATE=body.tmpl BENCH_WRK_LINES=requests.tsv \
--     wrk -t2 -c64 -d10s -s bench/wrk-presigned.lua https://127.0.0.1:8443/ -- 2
--
-- The argument after `--` is wrk's thread count: thread k sends lines
-- k, k+T, k+2T, ... so no two threads send the same delivery. A thread that
-- runs out of lines starts again from its first (JetStream then drops the
-- repeats as duplicates); `done` reports that as "wrapped", and run.sh says
-- so in the report. Every request is built once in `init`, so the generator
-- only copies bytes while measuring.
--
-- BENCH_WRK_PATH (default "/") and BENCH_WRK_HOST (default: the URL's) say
-- where the requests go: a pool routes each by its host and path
-- (bench/pool-scale.sh).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local requests = {}
local index = 0
wrapped = 0

local function read_all(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  local nthreads = tonumber(args[1]) or 1
  local template = read_all(os.getenv("BENCH_WRK_TEMPLATE"))
  local placeholder = "@DELIVERY_ID@"
  local at = assert(string.find(template, placeholder, 1, true), "no placeholder in the template")
  local head = string.sub(template, 1, at - 1)
  local tail = string.sub(template, at + #placeholder)
  local path = os.getenv("BENCH_WRK_PATH") or "/"
  local host = os.getenv("BENCH_WRK_HOST")
  local k = 0
  for line in io.lines(os.getenv("BENCH_WRK_LINES")) do
    if k % nthreads == tid then
      local id
      local headers = {}
      for field in string.gmatch(line, "[^\t]+") do
        if not id then
          id = field
        else
          local name, value = string.match(field, "^([^:]+): (.*)$")
          headers[name] = value
        end
      end
      if host then
        headers["Host"] = host
      end
      requests[#requests + 1] = wrk.format("POST", path, headers, head .. id .. tail)
    end
    k = k + 1
  end
  assert(#requests > 0, "no requests for thread " .. tid)
end

function request()
  index = index + 1
  if index > #requests then
    index = 1
    wrapped = wrapped + 1
  end
  return requests[index]
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wrapped") or 0)
  end
  io.write(string.format(
    "WRK-JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"errors_connect\":%d,\"errors_read\":%d,\"errors_write\":%d,\"errors_status\":%d,\"errors_timeout\":%d,\"p50_us\":%d,\"p99_us\":%d,\"p999_us\":%d,\"wrapped\":%d}\n",
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), wraps))
end
