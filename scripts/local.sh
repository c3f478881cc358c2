#!/usr/bin/env bash
# Runs one wxflow process of the Procfile against the local layout: the embedded NATS of
# `wxflow nats` on 127.0.0.1:4250, SQLite in ./data, and the WeChat simulator of `wxflow sim`
# on https://127.0.0.1:8443 with its keys in ./data/sim. Every variable can be overridden.
# Build first (`go build -o wxflow .`), then start everything with a Procfile manager:
#   go install github.com/mattn/goreman@v0.3.16 && goreman start
set -euo pipefail
cd "$(dirname "$0")/.."
export WXFLOW_DATA=${WXFLOW_DATA:-data}
export WXFLOW_NATS_URL=${WXFLOW_NATS_URL:-nats://127.0.0.1:4250}
export WXFLOW_WECHAT_URL=${WXFLOW_WECHAT_URL:-https://127.0.0.1:8443}
export WXFLOW_MERCHANT_DIR=${WXFLOW_MERCHANT_DIR:-$WXFLOW_DATA/sim}
export WXFLOW_WECHAT_CA=${WXFLOW_WECHAT_CA:-$WXFLOW_MERCHANT_DIR/sim_ca.pem}
# A local-only admin token; set your own outside this machine.
export WXFLOW_ADMIN_TOKEN=${WXFLOW_ADMIN_TOKEN:-local-admin-token}
[ -x ./wxflow ] || go build -o wxflow .
case "${1:-}" in
  sim) shift; exec ./wxflow sim --addr 127.0.0.1:8443 --keys "$WXFLOW_MERCHANT_DIR" "$@" ;;
  nats) shift; exec ./wxflow nats --port 4250 "$@" ;;
  *) # wait until the simulator has written the merchant keys
     for _ in $(seq 1 100); do [ -f "$WXFLOW_MERCHANT_DIR/merchant.json" ] && break; sleep 0.1; done
     exec ./wxflow "$@" ;;
esac
