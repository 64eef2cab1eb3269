#!/usr/bin/env bash
# Envoy's own work per request, counted rather than timed: Envoy 1.40 runs
# under valgrind's callgrind (cache simulation on), with listeners that
# differ only in their auth filter: none; ext_authz over gRPC to the gate;
# the same with encode_raw_headers, with skip_envoy_headers, and with
# Envoy's Google gRPC client instead of its own; ext_authz in HTTP mode;
# in-process jwt_authn verifying the same pass cookie. For each listener it
# counts the instructions Envoy executes and its misses in simulated
# 32 KiB first-level caches per request, over a fixed number of requests
# sent by h2load. The counts do not depend on the VM's noise; they show how
# much work each path costs Envoy, and how much of its time goes to cache
# misses rather than instructions. RUNTIME='key: value' adds an Envoy
# runtime layer (e.g. 'envoy.reloadable_features.http2_use_oghttp2: true').
# Usage: bench/envoy_instructions.sh [requests-per-listener] [rounds]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-2000}"
rounds="${2:-2}"
cd "$root"
for t in valgrind callgrind_control; do
  command -v "$t" >/dev/null || { echo "$t is missing: apt-get install -y valgrind" >&2; exit 1; }
done
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install -y nghttp2-client" >&2; exit 1; }
[ -x "$root/.venv/bin/envoy" ] || { echo "run scripts/install-deps.sh (envoy)" >&2; exit 1; }
# valgrind must run the Envoy binary itself, not the venv's Python wrapper.
envoy="$("$root/.venv/bin/python3" -c 'import envoy, pathlib; print(next(pathlib.Path(envoy.__file__).parent.glob("_bin/envoy")))')"
source "$root/bench/envoy_lib.sh"
cargo build --release --example bench_server >&2
target="${CARGO_TARGET_DIR:-$root/target}/release/examples"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }

"$target/bench_server" --grpc --seconds 3600 > "$work/gate.json" &
"$target/bench_server" --seconds 3600 > "$work/upstream.json" &
for f in gate upstream; do
  for _ in $(seq 100); do [ -s "$work/$f.json" ] && break; sleep 0.1; done
done
cookie="$(json "$work/gate.json" cookie)"; host="$(json "$work/gate.json" host)"
grpc="$(json "$work/gate.json" grpc)"; upstream="$(json "$work/upstream.json" http)"

names="none ext_authz ext_authz_raw ext_authz_skip ext_authz_google ext_authz_http jwt_authn"
declare -A ports
for l in $names; do ports[$l]="$(port)"; done
{
  echo "static_resources:"
  echo "  listeners:"
  envoy_listener none "${ports[none]}" ""
  envoy_listener ext_authz "${ports[ext_authz]}" "$(envoy_gate_filter)"
  envoy_listener ext_authz_raw "${ports[ext_authz_raw]}" "$(envoy_gate_filter 'encode_raw_headers: true')"
  envoy_listener ext_authz_skip "${ports[ext_authz_skip]}" "$(envoy_gate_filter '' ', skip_envoy_headers: true')"
  envoy_listener ext_authz_google "${ports[ext_authz_google]}" "$(envoy_ext_authz "              grpc_service: { google_grpc: { target_uri: \"$grpc\", stat_prefix: gate }, timeout: 1s }")"
  envoy_listener ext_authz_http "${ports[ext_authz_http]}" "$(envoy_gate_http_filter)"
  envoy_listener jwt_authn "${ports[jwt_authn]}" "$(envoy_jwt_filter "$host" "$(json "$work/gate.json" jwks)")"
  echo "  clusters:"
  envoy_cluster upstream "${upstream##*:}" h1
  envoy_cluster gate_grpc "${grpc##*:}" h2
  envoy_cluster gate_http "$(json "$work/gate.json" http | sed 's/.*://')" h1
  if [ -n "${RUNTIME:-}" ]; then
    printf 'layered_runtime:\n  layers:\n  - name: static\n    static_layer: { %s }\n' "$RUNTIME"
  fi
} > "$work/envoy.yaml"
"$envoy" --mode validate -c "$work/envoy.yaml" >/dev/null 2>&1 || { "$envoy" --mode validate -c "$work/envoy.yaml" >&2; exit 1; }
# setsid: a background Envoy whose shell exits would get SIGTERM.
setsid valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no \
  --callgrind-out-file="$work/callgrind.%p" \
  "$envoy" -c "$work/envoy.yaml" --disable-hot-restart --base-id $$ --log-level error --concurrency 1 \
  > "$work/valgrind.log" 2>&1 &
vg=$!
for l in $names; do
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:${ports[$l]}/" && break; sleep 0.5; done
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:${ports[$l]}/")"
  [ "$code" = 200 ] || { echo "listener $l answered $code" >&2; cat "$work/valgrind.log" >&2; exit 1; }
done
load() { # requests listener; fails unless every answer is 2xx
  h2load --h1 -n "$1" -c 8 -H ":authority: $host" -H "Cookie: $cookie" "http://127.0.0.1:${ports[$2]}/" > "$work/h2load.txt"
  grep -q "status codes: $1 2xx" "$work/h2load.txt" || { echo "$2: not every answer was 2xx" >&2; cat "$work/h2load.txt" >&2; exit 1; }
}
for l in $names; do load 500 "$l"; done   # connections, caches, JIT of valgrind
callgrind_control -i on "$vg" >/dev/null
for r in $(seq "$rounds"); do
  for l in $names; do
    load 200 "$l"
    callgrind_control -z "$vg" >/dev/null
    load "$n" "$l"
    callgrind_control -d "$l-$r" "$vg" >/dev/null
    f="$(grep -l "^desc: Trigger: dump $l-$r\$" "$work"/callgrind.* | head -1)"
    echo "$l $(awk '/^events:/ {$1=""; print}' "$f" | xargs) $(awk '/^summary:/ {$1=""; print}' "$f" | xargs)" >> "$work/results"
  done
done
kill "$vg"
python3 - "$work/results" "$n" "$rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *rest = line.split()
    half = len(rest) // 2
    ev = dict(zip(rest[:half], map(int, rest[half:])))
    rows.setdefault(name, []).append(ev)
n = int(sys.argv[2])
per = lambda name, k: statistics.median(e.get(k, 0) for e in rows[name]) / n
print(f"Envoy per request (callgrind, medians of {sys.argv[3]} rounds of {n} requests)")
print()
print("| listener | instructions | I1 misses | D1 misses |")
print("|---|---|---|---|")
for name in rows:
    d1 = per(name, "D1mr") + per(name, "D1mw")
    print(f"| {name} | {per(name, 'Ir'):,.0f} | {per(name, 'I1mr'):,.0f} | {d1:,.0f} |")
print()
ir = lambda name: per(name, "Ir")
print(f"- instructions, jwt_authn / ext_authz: {ir('jwt_authn') / ir('ext_authz'):.2f}; over no auth: ext_authz +{ir('ext_authz') - ir('none'):,.0f}, jwt_authn +{ir('jwt_authn') - ir('none'):,.0f}")
PY
