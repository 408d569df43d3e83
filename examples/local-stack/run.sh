#!/usr/bin/env bash
# A real alert into a running Firebreak, without Docker:
#   exporter.py (a pretend checkout service) -> Prometheus (rules.yml) -> Alertmanager
#   -> POST /webhooks/alertmanager -> firebreak serve (console mode) -> investigation.
#
#   ./examples/local-stack/run.sh            start everything; Ctrl-C stops everything
#   ./examples/local-stack/run.sh break      make checkout fail (from another terminal)
#   ./examples/local-stack/run.sh fix        make it recover
#   ./examples/local-stack/run.sh incidents  list Firebreak's incidents
#
# Needs Debian's prometheus and prometheus-alertmanager packages
# (sudo apt-get install prometheus prometheus-alertmanager) and Firebreak installed in .venv
# (./scripts/demo.sh or: python3 -m venv .venv && .venv/bin/pip install -e .).
# Ports on 127.0.0.1: firebreak 8080, prometheus 19090, alertmanager 19093, exporter 19100.
# State (copied configs, token, databases, logs) lives in $FIREBREAK_LOCAL_STACK_DIR,
# default /tmp/firebreak-local-stack; delete it to start from scratch.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STATE="${FIREBREAK_LOCAL_STACK_DIR:-${TMPDIR:-/tmp}/firebreak-local-stack}"
VENV="${FIREBREAK_VENV:-$ROOT/.venv}"
PROMETHEUS="${PROMETHEUS_BIN:-/usr/bin/prometheus}"
ALERTMANAGER="${ALERTMANAGER_BIN:-/usr/bin/prometheus-alertmanager}"
FIREBREAK_URL=http://127.0.0.1:8080
EXPORTER_URL=http://127.0.0.1:19100

case "${1:-start}" in
  break) exec curl -fsS -X POST "$EXPORTER_URL/break" ;;
  fix) exec curl -fsS -X POST "$EXPORTER_URL/fix" ;;
  incidents) exec curl -fsS "$FIREBREAK_URL/api/v1/incidents" ;;
  start) ;;
  *) echo "usage: $0 [start|break|fix|incidents]" >&2; exit 2 ;;
esac

for binary in "$PROMETHEUS" "$ALERTMANAGER" "$VENV/bin/firebreak" "$VENV/bin/python"; do
  if [ ! -x "$binary" ]; then
    echo "missing $binary" >&2
    echo "  prometheus: sudo apt-get install prometheus prometheus-alertmanager" >&2
    echo "  firebreak:  ./scripts/demo.sh (or python3 -m venv .venv && .venv/bin/pip install -e .)" >&2
    exit 1
  fi
done

mkdir -p "$STATE/logs" "$STATE/prometheus" "$STATE/alertmanager"
cp "$HERE/prometheus.yml" "$HERE/rules.yml" "$HERE/alertmanager.yml" "$HERE/firebreak.yaml" "$STATE/"
if [ ! -s "$STATE/webhook-token" ]; then
  (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$STATE/webhook-token")
fi
FIREBREAK_WEBHOOK_TOKEN="$(cat "$STATE/webhook-token")"
export FIREBREAK_WEBHOOK_TOKEN
cd "$STATE"

pids=()
stopped=""
stop() {
  [ -z "$stopped" ] || return 0
  stopped=1
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped (state kept in $STATE)"
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

wait_ready() {  # name base-url path
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$2$3" 2>/dev/null; then echo "  $1 ready at $2"; return 0; fi
    sleep 0.2
  done
  echo "$1 did not become ready; see $STATE/$1.log" >&2
  exit 1
}

echo "starting the local stack in $STATE"
"$VENV/bin/firebreak" serve --config firebreak.yaml >firebreak.log 2>&1 &
pids+=($!)
"$VENV/bin/python" "$HERE/exporter.py" --port 19100 --log logs/checkout.log >exporter.log 2>&1 &
pids+=($!)
"$PROMETHEUS" --config.file=prometheus.yml --storage.tsdb.path=prometheus \
  --web.listen-address=127.0.0.1:19090 --web.external-url=http://127.0.0.1:19090 \
  --log.level=warn >prometheus.log 2>&1 &
pids+=($!)
"$ALERTMANAGER" --config.file=alertmanager.yml --storage.path=alertmanager \
  --web.listen-address=127.0.0.1:19093 --web.external-url=http://127.0.0.1:19093 \
  --cluster.listen-address= --log.level=warn \
  >alertmanager.log 2>&1 &
pids+=($!)

wait_ready firebreak "$FIREBREAK_URL" /readyz
wait_ready exporter "$EXPORTER_URL" /metrics
wait_ready prometheus http://127.0.0.1:19090 /-/ready
wait_ready alertmanager http://127.0.0.1:19093 /-/ready

cat <<EOF

Everything is up. In another terminal:

  $0 break                 # checkout starts failing; HighErrorRate fires in ~10-15 s
  $0 incidents             # = curl $FIREBREAK_URL/api/v1/incidents
  curl $FIREBREAK_URL/api/v1/incidents/1/timeline
  $0 fix                   # recovers; Alertmanager sends "resolved" ~30 s later

Prometheus alerts: http://127.0.0.1:19090/alerts   Alertmanager: http://127.0.0.1:19093
Firebreak's console output follows (also in $STATE/firebreak.log). Ctrl-C stops everything.

EOF
tail -n +1 -f firebreak.log &
pids+=($!)
# Exit (and stop the rest) as soon as any of the four servers dies; Ctrl-C runs the trap.
wait -n "${pids[@]:0:4}" || true
echo "a component exited; see the logs in $STATE" >&2
exit 1
