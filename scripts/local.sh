#!/usr/bin/env bash
# Runs one wxflow process of the Procfile against the local layout: the embedded NATS of
# `wxflow nats`, SQLite in ./data, and the WeChat simulator of `wxflow sim` with its keys in
# ./data/sim: the dev merchants, one folder each (a folder made before with one merchant keeps
# it). Every address comes from the environment (a .env file beside the Procfile works too); the
# defaults are the ones below. Build first, then start everything with a Procfile
# manager (Debian's ruby-foreman: `apt-get install ruby-foreman`):
#   go build -o wxflow . && foreman start
# (A missing ./wxflow is built here, with the tags of WXFLOW_BUILD_TAGS: "openssl" signs the
# merchants' RSA with the system's libcrypto, docs/PERFORMANCE.md; the default is Go's own.)
set -euo pipefail
cd "$(dirname "$0")/.."
export WXFLOW_DATA=${WXFLOW_DATA:-data}
export WXFLOW_NATS_URL=${WXFLOW_NATS_URL:-nats://127.0.0.1:4250}
export WXFLOW_WECHAT_URL=${WXFLOW_WECHAT_URL:-https://127.0.0.1:8443}
# the simulator's second site plays WeChat Pay's backup host (docs/OPERATIONS.md); "off": none
export WXFLOW_WECHAT_BACKUP_URL=${WXFLOW_WECHAT_BACKUP_URL:-https://127.0.0.1:8444}
export WXFLOW_HTTP_ADDR=${WXFLOW_HTTP_ADDR:-127.0.0.1:8080}    # shops, admins, /metrics
export WXFLOW_PUBLIC_ADDR=${WXFLOW_PUBLIC_ADDR:-127.0.0.1:8081} # WeChat's notifications only
export WXFLOW_MERCHANT_DIR=${WXFLOW_MERCHANT_DIR:-$WXFLOW_DATA/sim}
export WXFLOW_WECHAT_CA=${WXFLOW_WECHAT_CA:-$WXFLOW_MERCHANT_DIR/sim_ca.pem}
mkdir -p "$WXFLOW_DATA"
# Every process of the Procfile starts at once: one builds, the others wait for it. The
# first also makes the admin token (32 random bytes, hex) in <data>/admin.token, readable
# by you alone, unless WXFLOW_ADMIN_TOKEN is set; later runs reuse it.
token_file=$WXFLOW_DATA/admin.token
( flock 9
  [ -x ./wxflow ] || go build -tags "${WXFLOW_BUILD_TAGS:-}" -o wxflow .
  if [ -z "${WXFLOW_ADMIN_TOKEN:-}" ] && [ ! -s "$token_file" ]; then
    ( umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$token_file.tmp" && mv "$token_file.tmp" "$token_file" )
  fi
) 9>"$WXFLOW_DATA/.build.lock"
if [ -z "${WXFLOW_ADMIN_TOKEN:-}" ]; then
  WXFLOW_ADMIN_TOKEN=$(cat "$token_file")
  export WXFLOW_ADMIN_TOKEN
fi
# merchants_ready: the simulator has written every merchant's keys: the dev merchants' folders
# ($WXFLOW_MERCHANT_DIR/<name>/merchant.json, written in order, provider-sub2 last), or one
# merchant's merchant.json at the top of a folder made before (it stays single).
merchants_ready() {
  for _ in $(seq 1 300); do
    [ -f "$WXFLOW_MERCHANT_DIR/merchant.json" ] || [ -f "$WXFLOW_MERCHANT_DIR/provider-sub2/merchant.json" ] && return 0
    sleep 0.1
  done
}
# order_merchants: the merchants that take orders (not providers, not broken), comma-separated.
order_merchants() {
  if command -v python3 >/dev/null; then
    ./wxflow merchant list --json |
      python3 -c 'import json,sys; print(",".join(m["name"] for m in json.load(sys.stdin) if m.get("kind") != "provider" and not m.get("error")))'
  else
    echo "${WXFLOW_MERCHANT:-default}"
  fi
}
case "${1:-}" in
  sim) shift # the dev merchants in a new folder (`wxflow sim --merchants`)
     sim_addr=${WXFLOW_WECHAT_URL#https://}; sim_addr=${sim_addr%%/*}
     backup=()
     if [ "$WXFLOW_WECHAT_BACKUP_URL" != off ]; then
       backup_addr=${WXFLOW_WECHAT_BACKUP_URL#https://}; backup=(--backup-addr "${backup_addr%%/*}")
     fi
     exec ./wxflow sim --addr "$sim_addr" --keys "$WXFLOW_MERCHANT_DIR" "${backup[@]}" "$@" ;;
  nats) shift
     nats_port=${WXFLOW_NATS_URL##*:}; nats_port=${nats_port%%/*}
     exec ./wxflow nats --port "$nats_port" "$@" ;;
  api) # the demo's shop, made once acting for every merchant that takes orders, its key in the
     # data folder for `wxflow demo`
     merchants_ready
     ./wxflow shop add demo --merchant "$(order_merchants)" --if-missing --key-file "$WXFLOW_DATA/shops/demo.key"
     exec ./wxflow "$@" ;;
  *) # wait until the simulator has written the merchant keys
     merchants_ready
     exec ./wxflow "$@" ;;
esac
