-- Shared by kv-write.lua and kv-read.lua (loaded with dofile from the same directory).
-- Prints one machine-readable line at the end:
--   RESULT requests=N duration_us=N rps=F p50_us=N p99_us=N max_us=N non2xx=N sock_errors=N
local M = {}

local threads = {}

function M.setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function M.done(summary, latency, requests)
  local e = summary.errors
  local sock = e.connect + e.read + e.write + e.timeout
  local non2xx = 0
  for _, t in ipairs(threads) do
    non2xx = non2xx + (t:get("non2xx") or 0)
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d non2xx=%d sock_errors=%d\n",
    summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50.0), latency:percentile(99.0), latency.max,
    non2xx, sock))
end

-- counts responses outside 2xx (wrk itself only counts >399)
function M.response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if non2xx <= 3 then
      io.stderr:write(string.format("non-2xx %d: %s\n", status, string.sub(body or "", 1, 200)))
    end
  end
end

return M
