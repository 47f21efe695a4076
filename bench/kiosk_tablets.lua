-- wrk script of bench/kiosk_bench.py: many tablets polling through few connections.
--
-- wrk -s bench/kiosk_tablets.lua URL -- TABLETS_FILE PATH MODE
--   TABLETS_FILE: one tablet a line, "<device token> <ETag header value, or ->"
--   PATH: the path every request asks for (/kiosk/panel/status, /bench/trivial)
--   MODE: "etag" sends each tablet's If-None-Match (the 304 path); "none" sends none (the full path)
-- Requests rotate through the tablets, each with its own device cookie; each wrk thread starts at another
-- tablet. Responses are counted by status (200, 304, other) and `done` prints one line that the benchmark
-- reads: "KIOSK_BENCH {json}" (latencies in microseconds, from wrk's own histogram).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local requests = {}
local position = 0
s200, s304, other = 0, 0, 0

function init(args)
  local file, path, mode = args[1], args[2], args[3]
  for line in io.lines(file) do
    local token, tag = line:match("^(%S+) (%S+)$")
    if token then
      local headers = { ["Cookie"] = "roomsync_device=" .. token, ["HX-Request"] = "true" }
      if mode == "etag" and tag ~= "-" then headers["If-None-Match"] = tag end
      table.insert(requests, wrk.format("GET", path, headers))
    end
  end
  assert(#requests > 0, "no tablets in " .. file)
  position = (id * 7919) % #requests -- threads spread over the tablets
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  if status == 304 then s304 = s304 + 1 elseif status == 200 then s200 = s200 + 1 else other = other + 1 end
end

function done(summary, latency, requests_)
  local c200, c304, cother = 0, 0, 0
  for _, thread in ipairs(threads) do
    c200 = c200 + thread:get("s200")
    c304 = c304 + thread:get("s304")
    cother = cother + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'KIOSK_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},' ..
    '"status":{"200":%d,"304":%d,"other":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max,
    c200, c304, cother))
end
