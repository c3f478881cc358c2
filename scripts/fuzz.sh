#!/usr/bin/env bash
# Runs every Fuzz target in the module briefly: BUDGET is a -fuzztime, either a
# count of executions ("20000x", the default) or a duration ("30s").
# CI uses a count: with a duration, Go 1.26's fuzzing coordinator can fail a
# target with a bare "context deadline exceeded" as the time runs out, with no
# failing input (golang/go#75804, fixed in Go 1.27); a count has no deadline.
# Usage: scripts/fuzz.sh [BUDGET]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-20000x}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target ($dur)"
    # Minimizing a new input may take up to 60 s by default; 10 s keeps CI brief.
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$dur" -fuzzminimizetime 10s "$pkg"
  done
done
