-- scripts/wrk/gateway.lua: single-row GET or PUT through bt-gateway, for
-- scripts/bench-gateway.sh (figures in docs/performance.md, "Gateway").
--
--   wrk -t2 -c16 -d20s --latency -s scripts/wrk/gateway.lua http://127.0.0.1:8080 \
--       -- MODE TABLE KEYS VALUE_SIZE FIRST
--
--   MODE        get: GET /v1/tables/TABLE/rows/userNNNNNNNNNNNN of a random
--               row in [FIRST, FIRST+KEYS) (rows bt-bench sdk --workload put
--               wrote); put: PUT of distinct rows, thread i writing
--               FIRST + i*10^8 + 0, 1, 2, ...
--   VALUE_SIZE  put: bytes of the value of cf:c (a..z repeated, a JSON string)
--
-- Row keys and values are those of `bt-bench sdk` (tools/bench_sdk.c), so the
-- two paths do the same work.  At the end it prints one line like bt-bench
-- sdk's: "gateway MODE N ops/s p50 .. ms p99 .. ms mean .. ms (..)".

local next_tid = 0
local threads = {}

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

function init(args)
   mode = args[1] or "get"
   tbl = args[2] or "bench"
   keys = tonumber(args[3] or "100000")
   vsize = tonumber(args[4] or "100")
   first = tonumber(args[5] or "0")
   counter = 0
   local v = {}
   for i = 0, vsize - 1 do v[#v + 1] = string.char(97 + i % 26) end
   body = '{"cells":[{"column":"cf:c","value":"' .. table.concat(v) .. '"}]}'
   headers = {["Content-Type"] = "application/json"}
   math.randomseed(301 + (tid or 0) * 7919)
   prefix = "/v1/tables/" .. tbl .. "/rows/"
end

function request()
   if mode == "put" then
      local k = first + (tid or 0) * 100000000 + counter
      counter = counter + 1
      return wrk.format("PUT", prefix .. string.format("user%012d", k), headers, body)
   end
   local k = first + math.random(0, keys - 1)
   return wrk.format("GET", prefix .. string.format("user%012d", k))
end

function done(summary, latency, requests)
   local mode = threads[1] and threads[1]:get("mode") or "?"     -- done runs in the main state
   local secs = summary.duration / 1e6
   local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
               summary.errors.write + summary.errors.timeout
   io.write(string.format("gateway %s %.0f ops/s p50 %.3f ms p99 %.3f ms mean %.3f ms " ..
                          "(requests %d in %.1f s, errors %d, non-2xx %d)\n",
                          mode, summary.requests / secs, latency:percentile(50) / 1000,
                          latency:percentile(99) / 1000, latency.mean / 1000,
                          summary.requests, secs, bad, summary.errors.status))
end
