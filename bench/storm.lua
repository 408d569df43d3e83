-- An alert storm for wrk: every request is a 10-alert Alertmanager group notification,
-- spread over 50 groups, with fingerprints never seen before.
local counter = 0
local thread_id = 0
local run_id = "r"
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  run_id = args[1] or "r"
end

local function alert(fp, group)
  return string.format(
    '{"status":"firing","labels":{"alertname":"Storm%d","service":"svc%d","severity":"warning","instance":"i-%s"},'
    .. '"annotations":{"summary":"storm alert"},"startsAt":"2026-11-22T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",'
    .. '"generatorURL":"http://prometheus:9090/graph?g0.expr=up%%3D%%3D0","fingerprint":"%s"}',
    group, group, fp, fp)
end

function request()
  counter = counter + 1
  local group = counter % 50
  local alerts = {}
  for j = 1, 10 do
    alerts[j] = alert(string.format("%s-t%d-%d-%d", run_id, thread_id, counter, j), group)
  end
  local body = string.format(
    '{"version":"4","groupKey":"{}:{alertname=\\"Storm%d\\"}","truncatedAlerts":0,"status":"firing",'
    .. '"receiver":"firebreak","groupLabels":{"alertname":"Storm%d"},"commonLabels":{"alertname":"Storm%d"},'
    .. '"commonAnnotations":{},"externalURL":"http://alertmanager:9093","alerts":[%s]}',
    group, group, group, table.concat(alerts, ","))
  return wrk.format("POST", "/webhooks/alertmanager",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench-token"}, body)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  local socket_errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, non2xx, socket_errors,
    latency:percentile(50), latency:percentile(99), latency.max))
end
