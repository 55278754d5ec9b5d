-- wrk script of benchmarks/webhook_load.py: POST one signed webhook body, with an
-- X-GitHub-Delivery of its own per request (or cycling through ids delivered before), count the
-- answers by status and keep the 202 bodies (they name the job queued) for the exactly-once check.
--
--   wrk ... -s webhook_load.lua URL -- BODY_FILE SIGNATURE EVENT ID_PREFIX CYCLE RESULT_FILE
--
-- CYCLE 0: a fresh id per request (ID_PREFIX-THREAD-N); CYCLE n: ID_PREFIX-0 … ID_PREFIX-(n-1)
-- again and again. RESULT_FILE receives the counts, the latency percentiles and the 202 bodies.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   body = file:read("*a")
   file:close()
   headers = {
      ["Content-Type"] = "application/json",
      ["User-Agent"] = "GitHub-Hookshot/webhook-load",
      ["X-GitHub-Event"] = args[3],
      ["X-Hub-Signature-256"] = args[2],
   }
   cycle = tonumber(args[5])
   prefix = cycle > 0 and (args[4] .. "-") or (args[4] .. "-" .. thread_id .. "-")
   result_file = args[6]
   sent = 0
   statuses = {}
   accepted = {}
end

function request()
   sent = sent + 1
   headers["X-GitHub-Delivery"] = prefix .. (cycle > 0 and (sent % cycle) or sent)
   return wrk.format("POST", nil, headers, body)
end

function response(status, _, answer)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 202 then
      accepted[#accepted + 1] = answer
   end
end

function done(summary, latency, _)
   -- done() runs in the main state, which never sees the arguments: ask a thread.
   local out = assert(io.open(threads[1]:get("result_file"), "w"))
   out:write(string.format("requests %d\nduration_us %d\n", summary.requests, summary.duration))
   local errors = summary.errors
   out:write(string.format("errors %d\n",
      errors.connect + errors.read + errors.write + errors.timeout))
   out:write(string.format("p50_us %d\np99_us %d\n",
      latency:percentile(50), latency:percentile(99)))
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         out:write(string.format("status %d %d\n", status, count))
      end
      for _, answer in ipairs(thread:get("accepted")) do
         out:write("accepted ", answer, "\n")
      end
   end
   out:close()
end
