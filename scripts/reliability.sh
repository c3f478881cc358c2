#!/usr/bin/env bash
# Crash test with real processes: runs the Procfile's processes (nats, sim, engine, api and two
# `worker all`) from the real binary, drives ORDERS orders through every path with `wxflow demo`,
# and meanwhile kill -9's a random engine, api, worker or NATS process every few seconds and starts
# it again (NATS keeps its JetStream files). At the end every order must be in its right state and
# `wxflow verify` must find no breach. The simulator plays WeChat, which does not crash.
# Writes a summary to $OUT (default: stdout).
#
# Usage: scripts/reliability.sh [ORDERS] [KILL_EVERY_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-500}
every=${2:-3}
out=${OUT:-/dev/stdout}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -9 -f "$work/wxflow" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/wxflow" .
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    shuf -i 20000-60000 -n 1
}
nats_port=$(free_port); sim_port=$(free_port); api_port=$(free_port)
export WXFLOW_DATA="$work/data" WXFLOW_NATS_URL="nats://127.0.0.1:$nats_port"
export WXFLOW_WECHAT_URL="https://127.0.0.1:$sim_port" WXFLOW_MERCHANT_DIR="$work/data/sim"
export WXFLOW_WECHAT_CA="$work/data/sim/sim_ca.pem" WXFLOW_HTTP_ADDR="127.0.0.1:$api_port"
export WXFLOW_ADMIN_TOKEN=reliability WXFLOW_LOG_LEVEL=warn
mkdir -p "$work/data" "$work/logs"
declare -A pid
start() { # name, args…
  local name=$1; shift
  "$work/wxflow" "$@" >>"$work/logs/$name.log" 2>&1 &
  pid[$name]=$!
}
start nats nats --port "$nats_port"
"$work/wxflow" sim --addr "127.0.0.1:$sim_port" --keys "$WXFLOW_MERCHANT_DIR" --time-scale 0.01 >"$work/logs/sim.log" 2>&1 &
for _ in $(seq 1 100); do [ -f "$WXFLOW_MERCHANT_DIR/merchant.json" ] && break; sleep 0.1; done
start engine engine
start api api
start worker1 worker all
start worker2 worker all
sleep 2
"$work/wxflow" demo --orders "$orders" --concurrency 16 --timeout 300s --api "http://127.0.0.1:$api_port" \
  --sim "https://127.0.0.1:$sim_port" --sim-ca "$WXFLOW_WECHAT_CA" >"$work/demo.txt" 2>&1 &
demo=$!
kills=0
declare -A killed
while kill -0 "$demo" 2>/dev/null; do
  sleep "$every"
  kill -0 "$demo" 2>/dev/null || break
  victims=(engine api worker1 worker2 nats)
  v=${victims[$((RANDOM % 5))]}
  kill -9 "${pid[$v]}" 2>/dev/null || true
  wait "${pid[$v]}" 2>/dev/null || true
  kills=$((kills + 1)); killed[$v]=$(( ${killed[$v]:-0} + 1 ))
  sleep 0.$((RANDOM % 9 + 1))
  case $v in
    engine) start engine engine ;;
    nats) start nats nats --port "$nats_port" ;;
    api) start api api ;;
    worker*) start "$v" worker all ;;
  esac
done
demo_rc=0; wait "$demo" || demo_rc=$?
sleep 2 # let the relay publish what the last transitions wrote
verify_rc=0
"$work/wxflow" verify --logs "$(ls "$work"/logs/*.log | paste -sd, -)" >"$work/verify.txt" 2>&1 || verify_rc=$?
{
  echo "## Crash run: $orders orders, kill -9 every ${every}s ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "kills: $kills (engine ${killed[engine]:-0}, api ${killed[api]:-0}, worker1 ${killed[worker1]:-0}, worker2 ${killed[worker2]:-0}, nats ${killed[nats]:-0})"
  echo
  echo '```'
  tail -n 20 "$work/demo.txt"
  cat "$work/verify.txt"
  echo '```'
} >"$out"
[ "$demo_rc" -eq 0 ] && [ "$verify_rc" -eq 0 ]
