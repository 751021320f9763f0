-- wrk script: POST one body with a unique Idempotency-Key per request.
-- Environment: BENCH_PATH, BENCH_BODY, BENCH_CTYPE, BENCH_AUTH (the whole Authorization
-- value), BENCH_EXTRA (optional "Name: value" header), BENCH_NONCE (makes keys unique across
-- runs), BENCH_DELAY_MS (optional pause before each request, to pace the load).
-- Statuses: 2xx, 402 (declined: what stripe-mock answers) and others are counted apart.
-- done() prints one line "PAYDECK_RESULT <json>" for bench/runtime/run.py to parse.
local path = os.getenv("BENCH_PATH")
local body = os.getenv("BENCH_BODY")
local ctype = os.getenv("BENCH_CTYPE")
local auth = os.getenv("BENCH_AUTH")
local extra = os.getenv("BENCH_EXTRA")
local nonce = os.getenv("BENCH_NONCE") or "0"
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

-- tid is the global setup() gave this thread (a local of the same name would shadow it and
-- make both threads send the same keys).
function init(args)
  tid = tonumber(tid)
end

function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = ctype,
    ["Authorization"] = auth,
    ["Idempotency-Key"] = string.format("%s-%d-%d", nonce, tid, counter),
  }
  if extra and extra ~= "" then
    local name, value = extra:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  return wrk.format("POST", path, headers, body)
end

-- Counted per thread, summed in done(): the statuses the benchmark reports.
s2xx, s402, sother, last_other = 0, 0, 0, 0

function response(status, headers, body)
  if status >= 200 and status < 300 then
    s2xx = s2xx + 1
  elseif status == 402 then
    s402 = s402 + 1
  else
    sother = sother + 1
    last_other = status
  end
end

if pause > 0 then
  function delay()
    return pause
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local ok, declined, other, other_status = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("s2xx")
    declined = declined + thread:get("s402")
    other = other + thread:get("sother")
    if thread:get("last_other") ~= 0 then other_status = thread:get("last_other") end
  end
  io.write(string.format(
    'PAYDECK_RESULT {"requests": %d, "duration_us": %d, "ok": %d, "declined": %d, "other": %d, "other_status": %d, ' ..
    '"socket_errors": %d, "mean_us": %.1f, "p50_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, ok, declined, other, other_status, e.connect + e.read + e.write + e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
