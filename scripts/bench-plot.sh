#!/usr/bin/env bash
# Runs `wxflow bench` at several concurrencies and draws docs/throughput.png from the JSON.
# Usage: scripts/bench-plot.sh [ORDERS]   (JSON files are kept in .ci/out/bench-*.json)
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-500}
mkdir -p .ci/out
go build -o .ci/out/wxflow .
files=()
for c in 1 2 4 8 16 32 64; do
  .ci/out/wxflow bench --orders "$orders" --concurrency "$c" --json > ".ci/out/bench-$c.json"
  files+=(".ci/out/bench-$c.json")
done
go run ./scripts/plot -o docs/throughput.png "${files[@]}"
echo "wrote docs/throughput.png"
