#!/usr/bin/env bash
# Scaling out, measured (docs/PERFORMANCE.md, "How wxflow scales out"), on PostgreSQL. Each run gets
# a fresh NATS server and a fresh schema of the database, dropped afterwards.
#
#   engines  `wxflow bench` with its one engine, then the same run with more engine processes
#            beside it on the same NATS server and database: they share the command stream (a work
#            queue: each command goes to one engine) and take turns at the outbox relay, the expiry,
#            the reconciler and the refund queue. Prints orders/s per number of engines.
#   workers  the Procfile's processes (nats, sim, engine, api, worker sign) with WeChat answering
#            every call after WECHAT_DELAY; a flood of creates (each order authorized at once) piles
#            up orders waiting for their prepay; then 1, then 2 `wxflow worker prepay` processes
#            start and the script times how fast they drain the pile. Prints prepays/s.
#
# Usage: scripts/scaleout.sh [engines|workers|all]   (default all)
#   WXFLOW_SCALEOUT_DB  the PostgreSQL (default WXFLOW_TEST_POSTGRES, else the test server
#                       postgres://postgres@127.0.0.1:5432/test?sslmode=disable); needs psql
#   ORDERS, CONCURRENCY, PAY_API, REFUND_EVERY   the engines' bench (1500, 32, v2, 5)
#   ENGINES             the engine counts to run (default "1 2")
#   WORKERS             the prepay process counts to run (default "1 2")
#   WECHAT_DELAY        how long WeChat takes to answer in the workers' runs (default 200ms; 0: at once)
#   FLOOD_FOR           how long the creates pile up in the workers' runs (default 2s)
#   WXFLOW_WORKER_LANES events each worker process handles at once (default 16), passed on
# The engines' JSON reports are kept in .ci/out/scaleout-engines-<engines>-<run>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
db=${WXFLOW_SCALEOUT_DB:-${WXFLOW_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}}
command -v psql >/dev/null || { echo "scaleout: needs psql (a fresh schema per run)" >&2; exit 2; }
psql "$db" -qc 'SELECT 1' >/dev/null || { echo "scaleout: no PostgreSQL at $db (set WXFLOW_SCALEOUT_DB)" >&2; exit 2; }

work=$(mktemp -d)
runs=0
pids=()
schemas=()
stop_run() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_run
  for s in "${schemas[@]}"; do psql "$db" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    shuf -i 20000-60000 -n 1
}
wait_port() { # PORT PID LOG: until the port answers; fails when the process ended
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  echo "scaleout: nothing listens on $1:" >&2; tail -n 20 "$3" >&2; exit 1
}
json() { # FILE EXPR: a number of a JSON report, EXPR indexing it as r
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round(eval(sys.argv[2]), 2))' "$1" "$2"
}
fresh_schema() { # NAME: makes it; sets schema, and url to the database seen through it
  psql "$db" -qc "CREATE SCHEMA $1" >/dev/null
  schema=$1
  schemas+=("$1")
  local sep='?'
  [[ $db == *\?* ]] && sep='&'
  url="$db${sep}search_path=$1"
}
start() { # LOG ARGS…: the binary in the background
  local log=$1
  shift
  "$work/wxflow" "$@" >"$log" 2>&1 &
  pids+=($!)
}

mkdir -p .ci/out
go build -o "$work/wxflow" .
go build -o "$work/flood" ./scripts/flood

measure_engines() {
  local orders=${ORDERS:-1500} conc=${CONCURRENCY:-32} pay_api=${PAY_API:-v2} refund_every=${REFUND_EVERY:-5} base=""
  echo "engines: wxflow bench on PostgreSQL, $orders orders, concurrency $conc, pay API $pay_api, every ${refund_every}th refunded"
  printf '%-8s %10s %12s %8s %14s\n' engines orders/s 'vs first' ratio 'p99 c→n (ms)'
  for engines in ${ENGINES:-1 2}; do
    local run=$work/engines$engines-$runs
    mkdir -p "$run/nats" "$run/bench"
    runs=$((runs + 1))
    fresh_schema "wxflow_scaleout_$$_${runs}_e$engines"
    local port
    port=$(free_port)
    local nats=nats://127.0.0.1:$port
    start "$run/nats.log" nats --no-auth --port "$port" --data "$run/nats" --log-level warn
    wait_port "$port" "${pids[-1]}" "$run/nats.log"
    # The bench runs one engine of its own; the others are processes of their own.
    for i in $(seq 2 "$engines"); do
      mkdir -p "$run/engine$i"
      start "$run/engine$i.log" engine --data "$run/engine$i" --db "$url" --nats "$nats" --log-level warn \
        --reconcile-payment-after 1h --reconcile-refund-after 1h
    done
    local out=.ci/out/scaleout-engines-$engines-$runs.json
    if ! "$work/wxflow" bench --json --orders "$orders" --concurrency "$conc" --pay-api "$pay_api" \
      --refund-every "$refund_every" --db "$url" --nats "$nats" --data "$run/bench" >"$out" 2>"$run/bench.log"; then
      echo "scaleout: the run with $engines engines failed:" >&2
      for f in "$run"/bench.log "$run"/engine*.log; do [ -f "$f" ] && { echo "== $f" && tail -n 20 "$f"; } >&2; done
      exit 1
    fi
    local ops
    ops=$(json "$out" 'r["orders_per_s"]')
    [ -n "$base" ] || base=$ops
    printf '%-8s %10s %12s %8s %14s\n' "$engines" "$ops" "$(python3 -c "print(round($ops / $base, 2))")" \
      "$(json "$out" 'r["ratio"]')" "$(json "$out" 'r["latency_ms"]["created_notified"]["p99"]')"
    stop_run
  done
}

measure_workers() {
  local delay=${WECHAT_DELAY:-200ms} flood_for=${FLOOD_FOR:-2s} base=""
  echo "workers: prepay worker processes draining a pile of orders, WeChat answering every call after $delay (${WXFLOW_WORKER_LANES:-16} lanes each)"
  printf '%-9s %7s %10s %12s\n' processes orders prepays/s 'vs first'
  for procs in ${WORKERS:-1 2}; do
    local run=$work/workers$procs-$runs
    mkdir -p "$run/data" "$run/logs"
    runs=$((runs + 1))
    fresh_schema "wxflow_scaleout_$$_${runs}_w$procs"
    local nats_port sim_port api_port public_port
    nats_port=$(free_port) sim_port=$(free_port) api_port=$(free_port) public_port=$(free_port)
    export WXFLOW_DATA=$run/data WXFLOW_DB_URL=$url WXFLOW_NATS_URL=nats://127.0.0.1:$nats_port \
      WXFLOW_WECHAT_URL=https://127.0.0.1:$sim_port WXFLOW_MERCHANT_DIR=$run/data/sim \
      WXFLOW_WECHAT_CA=$run/data/sim/sim_ca.pem WXFLOW_HTTP_ADDR=127.0.0.1:$api_port \
      WXFLOW_PUBLIC_ADDR=127.0.0.1:$public_port WXFLOW_LOG_LEVEL=warn WXFLOW_SHOP_RATE=+Inf WXFLOW_PUBLIC_RATE=+Inf
    start "$run/logs/nats.log" nats --port "$nats_port"
    wait_port "$nats_port" "${pids[-1]}" "$run/logs/nats.log"
    local slow=(--fault-slow 1 --fault-slow-delay "$delay")
    [ "$delay" != 0 ] || slow=()
    start "$run/logs/sim.log" sim --addr "127.0.0.1:$sim_port" --keys "$run/data/sim" --time-scale 0.01 "${slow[@]}"
    wait_port "$sim_port" "${pids[-1]}" "$run/logs/sim.log"
    "$work/wxflow" shop add demo --merchant default --if-missing --key-file "$run/data/shops/demo.key" >"$run/logs/shop.log" 2>&1
    start "$run/logs/engine.log" engine
    start "$run/logs/api.log" api --no-admin
    start "$run/logs/sign.log" worker sign
    wait_port "$api_port" "${pids[-1]}" "$run/logs/api.log"
    local created
    created=$("$work/flood" orders -url "http://127.0.0.1:$api_port" -key "$(cat "$run/data/shops/demo.key")" \
      -for "$flood_for" -concurrency 16 | sed -n 's/^created=//p')
    # Every create is applied (authorized at once, its event published) before the workers start.
    local q="SELECT count(*), count(*) FILTER (WHERE prepay_id <> '') FROM $schema.orders" total=0 waiting
    for _ in $(seq 1 600); do
      IFS='|' read -r total waiting < <(psql "$db" -Atc "SELECT count(*), count(*) FILTER (WHERE state = 'authorized') FROM $schema.orders")
      [ "$total" -ge "$created" ] && [ "$waiting" = "$total" ] && break
      sleep 0.1
    done
    for i in $(seq 1 "$procs"); do start "$run/logs/prepay$i.log" worker prepay; done
    # The drain is timed from the first prepay to the last.
    local t0="" n0=0 t1 done_ n
    while :; do
      IFS='|' read -r _ done_ < <(psql "$db" -Atc "$q")
      t1=$(date +%s.%N)
      if [ -z "$t0" ] && [ "$done_" -gt 0 ]; then t0=$t1 n0=$done_; fi
      [ "$done_" -ge "$total" ] && break
      sleep 0.2
    done
    n=$((total - n0))
    local rate
    rate=$(python3 -c "print(round($n / max(0.001, $t1 - $t0), 1))")
    [ -n "$base" ] || base=$rate
    printf '%-9s %7s %10s %12s\n' "$procs" "$total" "$rate" "$(python3 -c "print(round($rate / $base, 2))")"
    stop_run
  done
}

case $what in
  engines) measure_engines ;;
  workers) measure_workers ;;
  all) measure_engines; measure_workers ;;
  *) echo "usage: scripts/scaleout.sh [engines|workers|all]" >&2; exit 2 ;;
esac
