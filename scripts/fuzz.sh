#!/usr/bin/env bash
# Runs every Fuzz target in the module briefly: BUDGET is a -fuzztime, either a
# count of executions ("20000x", the default) or a duration ("30s").
# CI uses a count: with a duration, Go 1.26's fuzzing coordinator can fail a
# target with a bare "context deadline exceeded" as the time runs out, with no
# failing input (golang/go#75804, fixed in Go 1.27); a count has no deadline.
# Each package's instrumented test binary is built once (go test -c -fuzz)
# and runs each of its targets: linking a package's test binary again per
# target cost CI minutes. New interesting inputs go to the same cache as
# `go test -fuzz`'s; a failing input is written to the package's testdata/fuzz.
# Usage: scripts/fuzz.sh [BUDGET]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-20000x}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cache=$(go env GOCACHE)/fuzz
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
  [ -n "$targets" ] || continue
  echo "build $pkg (fuzzing instrumentation)"
  go test -c -fuzz=. -o "$bin/pkg.test" "$pkg"
  for target in $targets; do
    echo "fuzz $pkg $target ($dur)"
    # Minimizing a new input may take up to 60 s by default; 10 s keeps CI brief.
    (cd "$dir" && "$bin/pkg.test" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime "$dur" \
      -test.fuzzminimizetime 10s -test.fuzzcachedir "$cache/$pkg")
  done
done
