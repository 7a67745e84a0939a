#!/usr/bin/env bash
# `budgetgate serve` under real HTTP load (oha), against baselines on the
# same machine:
#   1. check throughput, memory store, vs a trivial axum JSON endpoint
#      (budgetgate-cli/examples/trivial_json.rs: parses the same body,
#      answers a small JSON object; no budget) — target ≥ 0.7× of it;
#   2. p50/p99 latency of both at a fixed rate;
#   3. the same on Redis (a private redis-server), against the trivial
#      endpoint doing two PINGs per request (the floor of a networked check).
# Every request carries an API key (the service hashes and checks it).
#
#   benches/service.sh                 # DUR=10s CONC=32 RATE=2000 by default
#   DUR=20s CONC=64 RATE=5000 benches/service.sh
#
# Installs oha with `cargo install oha --locked` if it is missing; needs
# redis-server and python3. Servers and load generator share the machine:
# on 2 cores the figures are a comparison, not a capacity.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}
CONC=${CONC:-32}
RATE=${RATE:-2000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

command -v oha >/dev/null 2>&1 || cargo install oha --locked
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "python3 is needed" >&2; exit 1; }

cargo build --release -q -p budgetgate-cli --bin budgetgate --example trivial_json
BIN="$CARGO_TARGET_DIR/release/budgetgate"
TRIVIAL="$CARGO_TARGET_DIR/release/examples/trivial_json"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME CMD…: runs a server whose first stdout line says "… http://ADDR …"
# and sets ADDR. Not in a subshell, so its PID reaches the cleanup trap.
start() {
  local name=$1; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 1 100); do
    if grep -q 'http://' "$work/$name.out" 2>/dev/null; then
      ADDR=$(sed -n 's#.*http://\([^ ]*\).*#\1#p' "$work/$name.out" | head -n 1)
      return
    fi
    sleep 0.1
  done
  echo "$name did not start: $(cat "$work/$name.err")" >&2
  exit 1
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --save "" --appendonly no --bind 127.0.0.1 >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

KEY=bench-key
HASH=$("$BIN" hash-key "$KEY")
config() {
  cat >"$work/$1.toml" <<TOML
listen = "127.0.0.1:0"
$2
[[keys]]
name = "bench"
role = "admin"
sha256 = "$HASH"
TOML
}
config memory ""
config redis "redis_url = \"$REDIS_URL\""

start svc-memory env -u BUDGETGATE_REDIS_URL BUDGETGATE_LOG=warn "$BIN" serve --config "$work/memory.toml"
SVC_MEM=$ADDR
start svc-redis env -u BUDGETGATE_REDIS_URL BUDGETGATE_LOG=warn "$BIN" serve --config "$work/redis.toml"
SVC_REDIS=$ADDR
start trivial "$TRIVIAL" "127.0.0.1:$(free_port)"
TRIV_MEM=$ADDR
start trivial-redis "$TRIVIAL" "127.0.0.1:$(free_port)" --redis "$REDIS_URL"
TRIV_REDIS=$ADDR

for addr in "$SVC_MEM" "$SVC_REDIS"; do
  curl -sf -X PUT "http://$addr/v1/admin/budgets" -H "Authorization: Bearer $KEY" \
    -d '{"namespace":"bench","resource":"check","principal":"*","budgets":[{"max_spend":"1000000000000"}]}' >/dev/null
done

BODY='{"ledger":{"namespace":"bench","resource":"check","principal":"user:1"},"amount":"0.000001"}'
# load NAME ADDR [extra oha args]: one JSON summary per run.
load() {
  local name=$1 addr=$2; shift 2
  oha -z "$DUR" -c "$CONC" --no-tui --output-format json -m POST \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$BODY" \
    "$@" "http://$addr/v1/check" >"$work/$name.json"
}

load svc-memory "$SVC_MEM"
load trivial "$TRIV_MEM"
load svc-memory-rate "$SVC_MEM" -q "$RATE"
load trivial-rate "$TRIV_MEM" -q "$RATE"
load svc-redis "$SVC_REDIS"
load trivial-redis "$TRIV_REDIS"
load svc-redis-rate "$SVC_REDIS" -q "$RATE"
load trivial-redis-rate "$TRIV_REDIS" -q "$RATE"

python3 - "$work" "$DUR" "$CONC" "$RATE" <<'PY'
import json, sys
work, dur, conc, rate = sys.argv[1:]
def read(name):
    with open(f"{work}/{name}.json") as f:
        j = json.load(f)
    s, p = j["summary"], j["latencyPercentiles"]
    ok = sum(v for k, v in j.get("statusCodeDistribution", {}).items() if k.startswith("2"))
    total = sum(j.get("statusCodeDistribution", {}).values()) or 1
    return s["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000, ok / total
print(f"oha -z {dur} -c {conc}; fixed-rate runs at {rate} req/s")
print(f"{'run':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'2xx':>7}")
rows = {}
for name in ["svc-memory", "trivial", "svc-memory-rate", "trivial-rate",
             "svc-redis", "trivial-redis", "svc-redis-rate", "trivial-redis-rate"]:
    rows[name] = read(name)
    rps, p50, p99, ok = rows[name]
    print(f"{name:<22}{rps:>10.0f}{p50:>9.3f}{p99:>9.3f}{ok:>7.0%}")
print(f"memory: serve / trivial = {rows['svc-memory'][0] / rows['trivial'][0]:.2f}x (target >= 0.7x)")
print(f"redis:  serve / two-PING floor = {rows['svc-redis'][0] / rows['trivial-redis'][0]:.2f}x")
PY
