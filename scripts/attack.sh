# The attack scenario of scripts/reliability.sh (sourced by it, not run alone): the deployment's
# trust boundaries attacked from outside while a demo runs, each kind of attack counted as
# attempts, refused (answered as it must be) and accepted (anything else: must be 0), one row
# each in $attacks. Helpers: scripts/natsprobe (one NATS attempt as one user) and scripts/flood
# (connection and order floods, with the api process's memory peak).

# attack_begin: counts for the next kind of attack.
attack_begin() { a_attempts=0 a_refused=0 a_accepted=0; }

# tally WANT GOT WHAT: one attempt; refused when GOT is WANT.
tally() {
  a_attempts=$((a_attempts + 1))
  if [ "$2" = "$1" ]; then
    a_refused=$((a_refused + 1))
  else
    a_accepted=$((a_accepted + 1))
    echo "ACCEPTED $3: got $2, want $1" >>"$run/attack.txt"
  fi
}

# attack_row WHAT MEMORY [NOTE]: records the attack's row; any accepted attempt fails the run.
attack_row() {
  local result=pass
  if [ "$a_accepted" -ne 0 ] || [ "${attack_broken:-0}" -ne 0 ]; then result=FAIL; failed=1; fi
  echo "| $1 | $a_attempts | $a_refused | $a_accepted | $2 | $result |" >>"$attacks"
  echo "$1: $a_attempts attempts, $a_refused refused, $a_accepted accepted ${3:-}" >>"$run/attack.txt"
  attack_broken=0
}

# call_once METHOD URL [curl args…]: the answer's status; its body in $run/body.
call_once() {
  local method=$1 url=$2; shift 2
  curl -s -o "$run/body" -w '%{http_code}' --max-time 15 -X "$method" "$url" "$@" || true
}

# call METHOD URL [curl args…]: call_once, asked again (for up to 10 s) while the answer is 429:
# the demo runs as the demo shop too, and shares its rate.
call() {
  local status
  for _ in $(seq 1 50); do
    status=$(call_once "$@")
    [ "$status" = 429 ] || break
    sleep 0.2
  done
  echo "$status"
}

# field NAME: a field of the order in the last answer ("?" when there is none).
field() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["order"].get(sys.argv[2], ""))' "$run/body" "$1" 2>/dev/null || echo "?"
}

# order_field ID NAME: a field of the order as its shop (demo) sees it.
order_field() {
  call GET "$internal/v1/orders/$1" -H "Authorization: Bearer $demo_key" >/dev/null
  field "$2"
}

# wait_state ID STATE: polls for up to 30 s.
wait_state() {
  for _ in $(seq 1 150); do [ "$(order_field "$1" state)" = "$2" ] && return 0; sleep 0.2; done
  echo "order $1 never reached $2 (is $(order_field "$1" state))" >>"$run/attack.txt"; attack_broken=1
}

# snapshot: the targets as they are (state and refunds), to prove an attack changed nothing.
snapshot() { echo "$(order_field "$open_id" state) $(order_field "$paid_id" state) $(order_field "$paid_id" refunded_fen)"; }

# unchanged BEFORE WHAT: one more attempt, refused when the targets are as they were.
unchanged() { tally "$1" "$(snapshot)" "$2 (the orders changed)"; }

json='Content-Type: application/json'
create_body='{"amount_fen":100,"description":"attack target","openid":"oAttack","pay_api":"v3"}'

# attack_setup: the shops, the target orders (one signed, one paid) and the revoked key.
attack_setup() {
  "$work/wxflow" shop add other --merchant default --if-missing --key-file "$WXFLOW_DATA/shops/other.key" >>"$run/logs/shop.txt" 2>&1
  demo_key=$(cat "$WXFLOW_DATA/shops/demo.key"); other_key=$(cat "$WXFLOW_DATA/shops/other.key")
  revoked_id=$("$work/wxflow" shop rotate other --key-file "$run/revoked.key" | sed -E 's/.*key ([^ ]+) written.*/\1/')
  "$work/wxflow" shop revoke other --key "$revoked_id" >>"$run/logs/shop.txt" 2>&1
  for _ in $(seq 1 100); do [ "$(call GET "$internal/readyz")" = 200 ] && break; sleep 0.2; done
  call POST "$internal/v1/orders" -H "Authorization: Bearer $demo_key" -H "$json" -H 'Idempotency-Key: attack-open' -d "$create_body" >/dev/null
  open_id=$(field id) open_trade_no=$(field out_trade_no)
  call POST "$internal/v1/orders" -H "Authorization: Bearer $demo_key" -H "$json" -H 'Idempotency-Key: attack-paid' -d "$create_body" >/dev/null
  paid_id=$(field id)
  wait_state "$open_id" signed
  wait_state "$paid_id" signed
  curl -s --cacert "$WXFLOW_WECHAT_CA" -X POST "https://127.0.0.1:$sim_port/sim/pay" -H "$json" \
    -d "{\"prepay_id\":\"$(order_field "$paid_id" prepay_id)\"}" >/dev/null
  wait_state "$paid_id" notified
  before=$(snapshot)
  echo "targets: $open_id (signed), $paid_id (paid): $before" >>"$run/attack.txt"
}

# Unauthenticated /v1: no key, none after Bearer, garbage, a forged well-formed key, Basic, a
# revoked key, the demo's key with its last character changed: 401 for create, get, refund, close.
attack_unauth() {
  attack_begin
  local tampered="${demo_key%?}$([ "${demo_key: -1}" = A ] && echo B || echo A)"
  local cred
  for cred in "" "Bearer " "Bearer nonsense" "Bearer wxs_0000000000000000_forgedforgedforgedforged" \
    "Basic $(printf 'demo:x' | base64)" "Bearer $(cat "$run/revoked.key")" "Bearer $tampered"; do
    local h=(-H "Authorization: $cred")
    [ -n "$cred" ] || h=()
    tally 401 "$(call POST "$internal/v1/orders" "${h[@]}" -H "$json" -d "$create_body")" "create with '${cred:0:12}…'"
    tally 401 "$(call GET "$internal/v1/orders/$open_id" "${h[@]}")" "get with '${cred:0:12}…'"
    tally 401 "$(call POST "$internal/v1/orders/$paid_id/refunds" "${h[@]}" -H "$json" -d '{"amount_fen":100}')" "refund with '${cred:0:12}…'"
    tally 401 "$(call POST "$internal/v1/orders/$open_id/close" "${h[@]}" -H "$json" -d '{}')" "close with '${cred:0:12}…'"
  done
  unchanged "$before" "unauthenticated"
  attack_row "unauthenticated \`/v1\` (create, get, refund, close; no key, garbage, forged, Basic, revoked, tampered) → 401" –
}

# Cross-shop: the other shop reads, pays, refunds and closes the demo's orders (404, nothing
# changes), reuses its Idempotency-Key (another order) and its out_trade_no (409 naming no order).
attack_cross() {
  attack_begin
  local o=(-H "Authorization: Bearer $other_key")
  tally 404 "$(call GET "$internal/v1/orders/$open_id" "${o[@]}")" "get"
  tally 404 "$(call GET "$internal/v1/orders/$open_id/pay-params" "${o[@]}")" "pay-params"
  tally 404 "$(call POST "$internal/v1/orders/$paid_id/refunds" "${o[@]}" -H "$json" -d '{"amount_fen":100}')" "refund"
  tally 404 "$(call POST "$internal/v1/orders/$open_id/close" "${o[@]}" -H "$json" -d '{}')" "close"
  call POST "$internal/v1/orders" "${o[@]}" -H "$json" -H 'Idempotency-Key: attack-open' -d "$create_body" >/dev/null
  local got=another; grep -q "$open_id" "$run/body" && got="the demo's order"
  tally another "$got" "create with the demo's Idempotency-Key"
  got=$(call POST "$internal/v1/orders" "${o[@]}" -H "$json" \
    -d "{\"amount_fen\":100,\"description\":\"x\",\"openid\":\"oAttack\",\"pay_api\":\"v3\",\"out_trade_no\":\"$open_trade_no\"}")
  grep -q "$open_id" "$run/body" && got="$got naming the order"
  tally 409 "$got" "create with the demo's out_trade_no"
  unchanged "$before" "cross-shop"
  attack_row "cross-shop (another shop's key on the demo's orders: get, pay-params, refund, close → 404; its Idempotency-Key, its out_trade_no)" –
}

# No-CORS requests: what a browser sends cross-origin without asking (text/plain, a form,
# multipart, no type) with a valid key: 415.
attack_nocors() {
  attack_begin
  local d=(-H "Authorization: Bearer $demo_key") ct
  for ct in 'Content-Type: text/plain' 'Content-Type: application/x-www-form-urlencoded' \
    'Content-Type: multipart/form-data; boundary=x' 'Content-Type:'; do
    tally 415 "$(call POST "$internal/v1/orders" "${d[@]}" -H "$ct" --data-binary "$create_body")" "create, $ct"
    tally 415 "$(call POST "$internal/v1/orders/$paid_id/refunds" "${d[@]}" -H "$ct" --data-binary '{"amount_fen":100}')" "refund, $ct"
    tally 415 "$(call POST "$internal/v1/orders/$open_id/close" "${d[@]}" -H "$ct")" "close, $ct"
  done
  unchanged "$before" "no-cors"
  attack_row "no-CORS requests (text/plain, form, multipart, no Content-Type) → 415" –
}

# The shop API, the admin page and API, metrics and readiness asked of the public listener: 404.
attack_public() {
  attack_begin
  local d=(-H "Authorization: Bearer $demo_key") a=(-H "Authorization: Bearer $WXFLOW_ADMIN_TOKEN")
  tally 404 "$(call POST "$public/v1/orders" "${d[@]}" -H "$json" -d "$create_body")" "create"
  tally 404 "$(call GET "$public/v1/orders/$open_id" "${d[@]}")" "get"
  tally 404 "$(call POST "$public/v1/orders/$paid_id/refunds" "${d[@]}" -H "$json" -d '{"amount_fen":100}')" "refund"
  tally 404 "$(call POST "$public/v1/orders/$open_id/close" "${d[@]}" -H "$json" -d '{}')" "close"
  tally 404 "$(call GET "$public/admin/")" "admin page"
  tally 404 "$(call GET "$public/admin/login")" "sign-in page"
  tally 404 "$(call POST "$public/admin/login" --data-urlencode "token=$WXFLOW_ADMIN_TOKEN")" "sign-in"
  tally 404 "$(call GET "$public/admin/api/orders" "${a[@]}")" "admin API"
  tally 404 "$(call POST "$public/admin/api/orders/$open_id/close" "${a[@]}" -H "$json" -d '{"reason":"x"}')" "admin API close"
  tally 404 "$(call GET "$public/metrics")" "metrics"
  tally 404 "$(call GET "$public/readyz")" "readyz"
  local path # the same through paths the listener cleans (301), followed
  for path in "/v1/../v1/orders/$open_id" "//v1/orders/$open_id" "/wechat/notify/../../v1/orders/$open_id" "/./admin/"; do
    tally 404 "$(call GET "$public$path" "${d[@]}" -L --path-as-is)" "GET $path"
  done
  unchanged "$before" "public listener"
  attack_row "the shop API, admin page and API, /metrics, /readyz on the public listener, also through \`..\` and \`//\` paths → 404" –
}

# probe ARGS…: one natsprobe attempt; prints "refused", "accepted" or "error".
probe() { "$work/natsprobe" -url "nats://127.0.0.1:$nats_port" "$@" 2>&1 | tee -a "$run/attack.txt" | head -n1 | cut -d: -f1; }

# Forged NATS commands and subscriptions: strangers are not let in; each user is refused what its
# role may not publish or hear.
attack_nats() {
  attack_begin
  local creds="$WXFLOW_DATA/nats/creds"
  tally refused "$(probe connect)" "anonymous connection"
  tally refused "$(probe -stranger connect)" "a stranger's key"
  tally refused "$(probe -seed "$creds/worker-all.nk" pub wxflow.cmd.notify.api)" "worker-all: notify as the API"
  tally refused "$(probe -seed "$creds/worker-query.nk" pub wxflow.cmd.refunded.refund)" "worker-query: another worker's result"
  tally refused "$(probe -seed "$creds/shop-demo.nk" pub wxflow.cmd.notify.api)" "shop-demo: notify as the API"
  tally refused "$(probe -seed "$creds/shop-demo.nk" pub wxflow.cmd.create.shop_other)" "shop-demo: create as shop other"
  tally refused "$(probe -seed "$creds/shop-demo.nk" sub 'wxflow.evt.>')" "shop-demo: every merchant's events"
  tally refused "$(probe -seed "$creds/shop-demo.nk" sub '_INBOX_api.>')" "shop-demo: the API's replies"
  tally refused "$(probe -seed "$creds/api.nk" pub "wxflow.evt.default.notified.$open_id")" "api: a forged event"
  tally refused "$(probe -seed "$creds/worker-all.nk" pub '$JS.API.STREAM.PURGE.WXFLOW_CMD')" "worker-all: purge the commands"
  tally refused "$(probe -seed "$creds/admin.nk" pub wxflow.cmd.notify.api)" "admin: notify as the API"
  tally refused "$(probe -seed "$creds/monitor.nk" pub wxflow.cmd.close.admin)" "monitor: close as admin"
  unchanged "$before" "NATS"
  attack_row "NATS: anonymous and unknown keys; forged commands, events, subscriptions and stream purges as a shop, worker, api, admin, monitor user" –
}

# CSRF: an admin signed in, and forms to close an order posted with the session's cookie from
# elsewhere: another site, a null or other-port origin, a foreign Referer, no or a wrong token;
# the admin API with the cookie alone; a cross-site sign-out. All refused, nothing changes.
attack_csrf() {
  attack_begin
  local jar=$run/admin.jar own=$internal close="$internal/admin/orders/$open_id/close" token
  call POST "$internal/admin/login" -c "$jar" -H "Origin: $own" --data-urlencode "token=$WXFLOW_ADMIN_TOKEN" >/dev/null
  [ "$(call GET "$internal/admin/orders/$open_id" -b "$jar")" = 200 ] || { echo "CSRF: no session" >>"$run/attack.txt"; attack_broken=1; }
  token=$(grep -o 'name="csrf" value="[^"]*"' "$run/body" | head -n1 | sed -E 's/.*value="([^"]*)"/\1/')
  [ -n "$token" ] || { echo "CSRF: no token in the page" >>"$run/attack.txt"; attack_broken=1; }
  local form=(-b "$jar" --data-urlencode "csrf=$token" --data-urlencode "reason=csrf")
  tally 403 "$(call POST "$close" "${form[@]}" -H 'Origin: https://evil.example')" "another site's origin"
  tally 403 "$(call POST "$close" "${form[@]}" -H 'Origin: null')" "origin null"
  tally 403 "$(call POST "$close" "${form[@]}" -H "Origin: http://127.0.0.1:$sim_port")" "same host, another port"
  tally 403 "$(call POST "$close" "${form[@]}" -H 'Referer: https://evil.example/page')" "no origin, another site's referer"
  tally 403 "$(call POST "$close" -b "$jar" -H "Origin: $own" --data-urlencode "reason=csrf")" "no CSRF token"
  tally 403 "$(call POST "$close" -b "$jar" -H "Origin: $own" --data-urlencode "csrf=${token%?}x" --data-urlencode "reason=csrf")" "a wrong CSRF token"
  tally 401 "$(call POST "$internal/admin/api/orders/$open_id/close" -b "$jar" -H "$json" -d '{"reason":"csrf"}')" "the admin API with the cookie alone"
  tally 403 "$(call POST "$internal/admin/logout" "${form[@]}" -H 'Origin: https://evil.example')" "a cross-site sign-out"
  tally 200 "$(call GET "$internal/admin/" -b "$jar")" "the session still live after the attacks"
  unchanged "$before" "CSRF"
  attack_row "CSRF: the admin's session cookie on a close form from another origin, null, another port, a foreign Referer, without or with a wrong token; the admin API with the cookie; a cross-site sign-out" –
}

# The admin token rotated: the api restarted with a new WXFLOW_ADMIN_TOKEN; the session made with
# the old token (its cookie in $run/admin.jar) and the old token itself open nothing.
attack_rotated() {
  attack_begin
  local old=$WXFLOW_ADMIN_TOKEN jar=$run/admin.jar token
  call GET "$internal/admin/orders/$open_id" -b "$jar" >/dev/null
  token=$(grep -o 'name="csrf" value="[^"]*"' "$run/body" | head -n1 | sed -E 's/.*value="([^"]*)"/\1/')
  killnow api
  WXFLOW_ADMIN_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  restart api
  for _ in $(seq 1 100); do [ "$(call GET "$internal/readyz")" = 200 ] && break; sleep 0.2; done
  tally 303 "$(call GET "$internal/admin/" -b "$jar")" "the old session's page (303 to the sign-in page)"
  tally 303 "$(call POST "$internal/admin/orders/$open_id/close" -b "$jar" -H "Origin: $internal" \
    --data-urlencode "csrf=$token" --data-urlencode "reason=old session")" "the old session's close form"
  tally 401 "$(call GET "$internal/admin/api/orders" -H "Authorization: Bearer $old")" "the old token on the admin API"
  rm -f "$run/old.jar"
  call POST "$internal/admin/login" -c "$run/old.jar" -H "Origin: $internal" --data-urlencode "token=$old" >/dev/null
  local got=refused; grep -q wxflow_admin "$run/old.jar" 2>/dev/null && got="signed in"
  tally refused "$got" "the old token at the sign-in form"
  unchanged "$before" "rotated token"
  attack_row "the admin token rotated (api restarted with a new WXFLOW_ADMIN_TOKEN): the old session's page and form, the old token on the API and the sign-in form" –
}

# Admin token guessing: wrong tokens at the sign-in form and the admin API from one address
# (127.0.0.3), each with another X-Forwarded-For (not trusted): none signs in, 429 after 5 failures.
attack_guess() {
  attack_begin
  local i status jar=$run/guess.jar limited=0
  for i in $(seq 1 20); do
    if [ $((i % 2)) -eq 0 ]; then
      status=$(call_once GET "$internal/admin/api/orders" --interface 127.0.0.3 -H "X-Forwarded-For: 10.9.$i.1" \
        -H "Authorization: Bearer wrong-token-$i-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')")
      [ "$status" = 429 ] && limited=$((limited + 1))
      [ "$status" = 401 ] || [ "$status" = 429 ] && status=refused
    else
      rm -f "$jar"
      status=$(call_once POST "$internal/admin/login" --interface 127.0.0.3 -c "$jar" -H "X-Forwarded-For: 10.9.$i.1" \
        --data-urlencode "token=wrong-token-$i-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')")
      [ "$status" = 429 ] && limited=$((limited + 1))
      grep -q wxflow_admin "$jar" 2>/dev/null && status="signed in" || status=refused
    fi
    tally refused "$status" "wrong token #$i"
  done
  [ "$limited" -ge 10 ] || { echo "token guessing: only $limited answered 429" >>"$run/attack.txt"; attack_broken=1; }
  attack_row "admin token guessing: 20 wrong tokens (sign-in form and admin API) from one address, each with another X-Forwarded-For: $limited answered 429" –
}

# flood_var NAME: a value from the flood's output ($run/flood.txt).
flood_var() { sed -n "s/^$1=//p" "$run/flood.txt"; }
mb() { awk -v k="$1" 'BEGIN { if (k < 0) print "?"; else printf "%.0f MB", k / 1024 }'; }

# 300 slow-body and 300 unfinished-60-KiB-header connections to the public listener from ten
# addresses, a genuine GET /healthz from 127.0.0.2 meanwhile; the api's memory peak.
attack_conns() {
  attack_begin
  "$work/flood" conns -addr "127.0.0.1:$public_port" -pid "${pid[api]}" -slow 300 -headers 300 >"$run/flood.txt" 2>&1 || true
  cat "$run/flood.txt" >>"$run/attack.txt"
  a_attempts=$(flood_var attempts) a_refused=$(flood_var refused) a_accepted=$(flood_var accepted)
  local genuine ms
  genuine=$(flood_var genuine_status) ms=$(flood_var genuine_ms)
  [ "$genuine" = 200 ] || { echo "the genuine request got $genuine" >>"$run/attack.txt"; attack_broken=1; }
  attack_row "300 slow-body + 300 unfinished 60 KiB-header connections to the public listener from 10 addresses ($(flood_var closed_at_once) closed at once, $(flood_var closed_by_timeout) at their timeout); GET /healthz from 127.0.0.2 meanwhile: $genuine in $ms ms" \
    "$(mb "$(flood_var hwm_kb)") (before: $(mb "$(flood_var hwm_before_kb)"))"
}

# One shop creates as fast as it can for 3 s (the rate is WXFLOW_SHOP_RATE): 429 past the rate;
# another shop's create halfway through, and a read after, are answered.
attack_orders() {
  attack_begin
  "$work/flood" orders -url "$internal" -key "$other_key" -check-key "$demo_key" -pid "${pid[api]}" \
    -for 3s -concurrency 16 -rate "$WXFLOW_SHOP_RATE" -burst $((2 * WXFLOW_SHOP_RATE)) >"$run/flood.txt" 2>&1 || true
  cat "$run/flood.txt" >>"$run/attack.txt"
  a_attempts=$(flood_var attempts) a_refused=$(flood_var limited) a_accepted=$(flood_var past_limit)
  local check after other
  check="$(flood_var check_status) in $(flood_var check_ms) ms"
  after=$(call GET "$internal/v1/orders/$open_id" -H "Authorization: Bearer $demo_key")
  other=$(flood_var other)
  [ "$(flood_var check_status)" = 201 ] && [ "$after" = 200 ] && [ "$a_refused" -gt 0 ] ||
    { echo "the flood: check $check, read after $after, $a_refused limited" >>"$run/attack.txt"; attack_broken=1; }
  attack_row "order flood: one shop, 16 clients, 3 s at ${WXFLOW_SHOP_RATE}/s (429 past it; accepted: created past the rate): $(flood_var created) created${other:+, other answers $other}; another shop's create meanwhile: $check; a read after: $after" \
    "$(mb "$(flood_var hwm_kb)")"
}

# 6. attack: the trust boundaries, attacked while a demo of $1 orders runs.
scenario_attack() {
  begin attack
  go build -o "$work/natsprobe" ./scripts/natsprobe
  go build -o "$work/flood" ./scripts/flood
  export WXFLOW_SHOP_RATE=50 # low enough for a 3 s flood to meet it
  # the demo shop's NATS user, read by the server at its start (as `wxflow nats` reads the shops)
  "$work/natsprobe" addshop "$WXFLOW_DATA" demo default >>"$run/logs/shop.txt" 2>&1
  start nats nats --port "$nats_port"
  start_sim
  start_app
  internal="http://127.0.0.1:$api_port" public="http://127.0.0.1:$public_port"
  : >"$run/attack.txt"
  attack_broken=0
  attack_setup
  local n=$((orders / 5))
  start_demo "$n" 4
  attack_unauth; attack_cross; attack_nocors; attack_public; attack_nats; attack_csrf; attack_rotated; attack_guess; attack_conns; attack_orders
  finish attack "$n" "the attacks of the table below, beside the demo; books and verify after them all"
  { echo "### attack: every attempt"; echo; echo '```'; head -n 80 "$run/attack.txt" || true; echo '```'; echo; } >>"$details"
  unset WXFLOW_SHOP_RATE
}
