#!/usr/bin/env bash
# Runs `wxflow bench` for each pay API at concurrency 1…64 and draws docs/throughput.png
# from the JSON: orders/s, and wxflow's CPU per order beside the ceiling's.
# Usage: scripts/bench-plot.sh [ORDERS] [PAY_APIS]   e.g. scripts/bench-plot.sh 2000 "v2 v3 mixed"
# The JSON files are kept in .ci/out/bench-<api>-<concurrency>.json; a table of them is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-1000}
apis=${2:-v2 v3 mixed}
mkdir -p .ci/out
go build -o .ci/out/wxflow .
files=()
for api in $apis; do
  for c in 1 2 4 8 16 32 64; do
    f=".ci/out/bench-$api-$c.json"
    .ci/out/wxflow bench --orders "$orders" --concurrency "$c" --pay-api "$api" --json > "$f"
    files+=("$f")
  done
done
go run ./scripts/plot -o docs/throughput.png "${files[@]}"
echo "wrote docs/throughput.png"
if command -v jq >/dev/null; then
  echo "| pay API | concurrency | orders/s | wxflow CPU ms/order (engine / api / workers) | NATS server | ceiling CPU ms/order | ratio | p99 created→notified (ms) | load |"
  echo "|---|---:|---:|---|---:|---:|---:|---:|---|"
  for f in "${files[@]}"; do
    jq -r '"| \(.pay_api) | \(.concurrency) | \(.orders_per_s|round) | \(.cpu_ms_per_order*100|round/100) (\(.cpu_ms_per_order_by_kind.engine*100|round/100) / \(.cpu_ms_per_order_by_kind.api*100|round/100) / \(.cpu_ms_per_order_by_kind.workers*100|round/100)) | \(.cpu_ms_per_order_by_kind.nats*100|round/100) | \(.ceiling.cpu_ms_per_order*100|round/100) | \(.ratio*100|round/100) | \(.latency_ms.created_notified.p99) | \(.load_avg[0])→\(.load_avg[1]) |"' "$f"
  done
fi
