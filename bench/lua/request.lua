-- One wrk script for every scenario; the harness passes the request through the
-- environment so the same file drives REST, proxies and MCP JSON-RPC POSTs:
--   BENCH_METHOD   GET | POST
--   BENCH_BODY     request body (optional)
--   BENCH_HEADERS  "Name: value" lines separated by newlines (optional)
--   BENCH_DELAY_MS mean pause per connection between requests (0 = closed loop at full
--                  speed); jittered uniformly in [0.5, 1.5) x so connections do not beat
--                  in lockstep. This is how the harness holds a fixed request rate
--                  (wrk2 is not packaged): rate ~= connections / (delay + latency).
-- done() prints one machine-readable line: BENCH_JSON {...}.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
end
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

if delay_ms > 0 then
  function delay()
    return math.floor(delay_ms * (0.5 + math.random()))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
