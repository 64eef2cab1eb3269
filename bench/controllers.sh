#!/usr/bin/env bash
# Load benchmarks through real Envoy and Traefik, each against baselines
# measured in the same run (wrk, loopback, plain HTTP listeners):
#   Envoy:   no auth | gate via gRPC ext_authz | Envoy's own jwt_authn
#            verifying the same pass cookie (HS256, the pass subkey as JWKS)
#   Traefik: no auth | forwardAuth to the gate over http | the same over
#            https (the gate's listen.https; Traefik speaks HTTP/2 to it)
#   gRPC:    the gate's Check vs. a trivial tonic unary handler on the same
#            server (grpc_bench as client)
# Usage: bench/controllers.sh [seconds-per-run] [connections] [rounds]
# The upstream (a second bench server standing for the workspace) runs on
# the controller's CPU 1. GATE_CPU=1 (default) puts the gate there too, so
# every request's whole cost lands on one core; GATE_CPU=0 puts it beside
# wrk instead, leaving the controller and the workspace a core of their
# own, as when the gate runs in its own pods.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-10}"
conns="${2:-64}"
rounds="${3:-3}"
cd "$root"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
envoy="$root/.venv/bin/envoy"; traefik="$root/.venv/bin/traefik"
[ -x "$envoy" ] && [ -x "$traefik" ] || { echo "run scripts/install-deps.sh (envoy, traefik)" >&2; exit 1; }
source "$root/bench/envoy_lib.sh"
source "$root/bench/traefik_lib.sh"
cargo build --release --example bench_server --example grpc_bench >&2
target="${CARGO_TARGET_DIR:-$root/target}/release/examples"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

gate_cpu="${GATE_CPU:-1}"
taskset -c "$gate_cpu" "$target/bench_server" --grpc --https --seconds 3600 > "$work/server.json" &
for _ in $(seq 100); do [ -s "$work/server.json" ] && break; sleep 0.1; done
info="$(head -1 "$work/server.json")"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$info" "$1"; }
gate="$(field http)"; grpc="$(field grpc)"; cookie="$(field cookie)"; host="$(field host)"; jwks="$(field jwks)"
grpc_port="${grpc##*:}"; gate_pid="$(field pid)"; gate_https="$(field https)"; gate_ca="$(field ca)"
taskset -c 1 "$target/bench_server" --seconds 3600 > "$work/upstream.json" &
for _ in $(seq 100); do [ -s "$work/upstream.json" ] && break; sleep 0.1; done
upstream="$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["http"])' < "$work/upstream.json")"
upstream_port="${upstream##*:}"; upstream_pid="$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["pid"])' < "$work/upstream.json")"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name url -> "name rps p99 non2xx gate_us controller_us"
  local name="$1" url="$2" g0 c0 g1 c1 total
  g0="$(ticks "$gate_pid")"; c0="$(ticks "$ctl_pid")"
  taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" --latency -H "Host: $host" -H "Cookie: $cookie" "$url" > "$work/$name.txt"
  g1="$(ticks "$gate_pid")"; c1="$(ticks "$ctl_pid")"
  total="$(awk '/requests in/ {print $1}' "$work/$name.txt")"
  echo "$name $(awk '/^Requests\/sec/ {print $2}' "$work/$name.txt") $(awk '$1=="99%" {print $2}' "$work/$name.txt") $(awk '/Non-2xx/ {print $4}' "$work/$name.txt" | grep . || echo 0) $(( (g1 - g0) * 10000 / total )) $(( (c1 - c0) * 10000 / total ))"
}

# ---- Envoy: three listeners, identical but for the auth filter.
p_none="$(port)"; p_gate="$(port)"; p_jwt="$(port)"
{
  echo "static_resources:"
  echo "  listeners:"
  envoy_listener none "$p_none" ""
  envoy_listener gate "$p_gate" "$(envoy_gate_filter)"
  envoy_listener jwt "$p_jwt" "$(envoy_jwt_filter "$host" "$jwks")"
  echo "  clusters:"
  envoy_cluster upstream "$upstream_port" h1
  envoy_cluster gate_grpc "$grpc_port" h2
} > "$work/envoy.yaml"
"$envoy" --mode validate -c "$work/envoy.yaml" >/dev/null 2>&1 || { "$envoy" --mode validate -c "$work/envoy.yaml" >&2; exit 1; }
taskset -c 1 "$envoy" -c "$work/envoy.yaml" --disable-hot-restart --base-id $$ --log-level error --concurrency 1 &
ctl_pid=$!
for p in "$p_none" "$p_gate" "$p_jwt"; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$p/")"
  [ "$code" = 200 ] || { echo "envoy listener $p answered $code" >&2; exit 1; }
done
# Interleaved rounds, in alternating order; the summary takes each
# measurement's median.
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then order="none gate jwt"; else order="jwt gate none"; fi
  for l in $order; do
    case "$l" in
      none) run envoy_none "http://127.0.0.1:$p_none/" ;;
      gate) run envoy_ext_authz "http://127.0.0.1:$p_gate/" ;;
      jwt) run envoy_jwt_authn "http://127.0.0.1:$p_jwt/" ;;
    esac >> "$work/results"
  done
done
kill "$ctl_pid" 2>/dev/null || true

# ---- Traefik: two routers on one entry point, identical but for forwardAuth.
tp="$(port)"
cat > "$work/dynamic.yaml" <<T
http:
  middlewares:
    gate:
      forwardAuth:
        address: "http://$gate/check/traefik"
        trustForwardHeader: false
        authResponseHeaders: [X-Workspace-User, X-Workspace-User-Id, X-Workspace-Id, Cookie, Authorization]
    gate_https:
      forwardAuth:
        address: "https://$gate_https/check/traefik"
        tls: { ca: "$gate_ca" }
        trustForwardHeader: false
        authResponseHeaders: [X-Workspace-User, X-Workspace-User-Id, X-Workspace-Id, Cookie, Authorization]
    trivial:
      replacePath: { path: /trivial }
  routers:
    open:
      rule: "PathPrefix(\`/open\`)"
      entryPoints: [web]
      middlewares: [trivial]
      service: upstream
    protected:
      rule: "PathPrefix(\`/protected\`)"
      entryPoints: [web]
      middlewares: [gate, trivial]
      service: upstream
    protected_https:
      rule: "PathPrefix(\`/https\`)"
      entryPoints: [web]
      middlewares: [gate_https, trivial]
      service: upstream
  services:
    upstream:
      loadBalancer: { servers: [{ url: "http://$upstream" }] }
T
traefik_start "$traefik" "$work" "$tp"
ctl_pid=$traefik_pid
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tp/open")" = 200 ] && break; sleep 0.1; done
for path in protected https; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$tp/$path")"
  [ "$code" = 200 ] || { echo "traefik /$path answered $code" >&2; exit 1; }
done
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then order="open protected https"; else order="https protected open"; fi
  for r in $order; do
    case "$r" in
      open) run traefik_open "http://127.0.0.1:$tp/open" ;;
      protected) run traefik_forwardauth "http://127.0.0.1:$tp/protected" ;;
      https) run traefik_forwardauth_https "http://127.0.0.1:$tp/https" ;;
    esac >> "$work/results"
  done
done

# ---- gRPC: Check vs. a trivial unary handler on the same server. h2load
# (C, HTTP/2) sends pre-encoded gRPC frames, so the client is not the
# bottleneck; grpc_bench first proves the Check answers are OK (allow).
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install -y nghttp2-client" >&2; exit 1; }
proof="$("$target/grpc_bench" --addr "$grpc" --rpc check --conns 4 --secs 1 --host "$host" --cookie "$cookie")"
"$target/grpc_bench" --dump "$work" --host "$host" --cookie "$cookie"
h2() { # name path body -> JSON
  taskset -c 0 h2load -D "$secs" -c 8 -m 16 -d "$work/$3" -H 'content-type: application/grpc' -H 'te: trailers' "http://$grpc$2" > "$work/$1.txt"
  python3 - "$work/$1.txt" <<'PY'
import json, re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"finished in [0-9.]+s, ([0-9.]+) req/s", t).group(1))
m = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", t)
print(json.dumps({"rps": rps, "errors": int(m.group(2)) + int(m.group(3))}))
PY
}
for _ in $(seq "$rounds"); do
  echo "grpc_health $(h2 grpc_health /grpc.health.v1.Health/Check health.bin)" >> "$work/grpc"
  echo "grpc_check $(h2 grpc_check /envoy.service.auth.v3.Authorization/Check check.bin)" >> "$work/grpc"
done
python3 -c 'import json,sys; p=json.loads(sys.argv[1]); sys.exit(0 if p["errors"]==0 and p["rps"]>0 else "Check did not allow: %s" % p)' "$proof"

python3 - "$work/results" "$work/grpc" "$rounds" "$gate_cpu" <<'PY'
import json, statistics, sys
def p99_ms(v):
    for u, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(u):
            return float(v[: -len(u)]) * f
runs = {}
for line in open(sys.argv[1]):
    n, rps, p99, bad, gate_us, ctl_us = line.split()
    if int(bad):
        sys.exit(f"{n}: {bad} non-2xx answers; the run is invalid")
    runs.setdefault(n, []).append((float(rps), p99_ms(p99), int(gate_us), int(ctl_us)))
for line in open(sys.argv[2]):
    n, js = line.split(" ", 1)
    d = json.loads(js)
    if d["errors"]:
        sys.exit(f"{n}: {d['errors']} failed requests")
    runs.setdefault(n, []).append((d["rps"], float("nan"), float("nan"), float("nan")))
med = {n: tuple(statistics.median(x[i] for x in v) for i in range(4)) for n, v in runs.items()}
print(f"Medians of {sys.argv[3]} interleaved rounds; the gate on CPU {sys.argv[4]}, the controller on CPU 1, wrk on CPU 0.")
print()
print("| measurement | requests/s | p99 (ms) | controller CPU per request (µs) | gate CPU per request (µs) |")
print("|---|---|---|---|---|")
dash = lambda v, f: "-" if v != v else f.format(v)
for n, (r, p, g, c) in med.items():
    print(f"| {n} | {r:.0f} | {dash(p, '{:.2f}')} | {dash(c, '{:.0f}')} | {dash(g, '{:.0f}')} |")
print()
en, eg, ej = med["envoy_none"], med["envoy_ext_authz"], med["envoy_jwt_authn"]
to, ta, ts = med["traefik_open"], med["traefik_forwardauth"], med["traefik_forwardauth_https"]
gh, gc = med["grpc_health"], med["grpc_check"]
print(f"- Envoy: gate ext_authz / no auth: {eg[0]/en[0]:.2f}; jwt_authn / no auth: {ej[0]/en[0]:.2f}")
print(f"- Envoy: gate ext_authz / in-process jwt_authn: {eg[0]/ej[0]:.2f} (goal >= 0.7); added p99 vs no auth: gate {eg[1]-en[1]:.2f} ms, jwt_authn {ej[1]-en[1]:.2f} ms")
print(f"- Traefik: forwardAuth / no auth: {ta[0]/to[0]:.2f}; added p99 {ta[1]-to[1]:.2f} ms")
print(f"- Traefik: forwardAuth over https / no auth: {ts[0]/to[0]:.2f}; added p99 {ts[1]-to[1]:.2f} ms; https / http: {ts[0]/ta[0]:.2f}")
print(f"- gRPC Check / trivial unary: {gc[0]/gh[0]:.2f} (goal >= 0.7)")
per_round = lambda a, b: ", ".join(f"{x[0]/y[0]:.2f}" for x, y in zip(runs[a], runs[b]))
print(f"- per round: ext_authz/jwt_authn {per_round('envoy_ext_authz', 'envoy_jwt_authn')}; gRPC check/trivial {per_round('grpc_check', 'grpc_health')}; Traefik https/none {per_round('traefik_forwardauth_https', 'traefik_open')}")
PY
