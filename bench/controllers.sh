#!/usr/bin/env bash
# Load benchmarks through real Envoy and Traefik, each against baselines
# measured in the same run (wrk, loopback, plain HTTP listeners):
#   Envoy:   no auth | gate via gRPC ext_authz | Envoy's own jwt_authn
#            verifying the same pass cookie (HS256, the pass subkey as JWKS)
#   Traefik: no auth | forwardAuth to the gate
#   gRPC:    the gate's Check vs. a trivial tonic unary handler on the same
#            server (grpc_bench as client)
# Usage: bench/controllers.sh [seconds-per-run] [connections]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-10}"
conns="${2:-64}"
cd "$root"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
envoy="$root/.venv/bin/envoy"; traefik="$root/.venv/bin/traefik"
[ -x "$envoy" ] && [ -x "$traefik" ] || { echo "run scripts/install-deps.sh (envoy, traefik)" >&2; exit 1; }
cargo build --release --example bench_server --example grpc_bench >&2
target="${CARGO_TARGET_DIR:-$root/target}/release/examples"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

"$target/bench_server" --grpc --seconds 3600 > "$work/server.json" &
for _ in $(seq 100); do [ -s "$work/server.json" ] && break; sleep 0.1; done
info="$(head -1 "$work/server.json")"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$info" "$1"; }
gate="$(field http)"; grpc="$(field grpc)"; cookie="$(field cookie)"; host="$(field host)"; jwks="$(field jwks)"
gate_port="${gate##*:}"; grpc_port="${grpc##*:}"

run() { # name url -> "name rps p99 non2xx"
  local name="$1" url="$2"
  wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Host: $host" -H "Cookie: $cookie" "$url" > "$work/$name.txt"
  echo "$name $(awk '/^Requests\/sec/ {print $2}' "$work/$name.txt") $(awk '$1=="99%" {print $2}' "$work/$name.txt") $(awk '/Non-2xx/ {print $4}' "$work/$name.txt" | grep . || echo 0)"
}

# ---- Envoy: three listeners, identical but for the auth filter.
p_none="$(port)"; p_gate="$(port)"; p_jwt="$(port)"
listener() { # name port filter-yaml
  cat <<L
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          route_config:
            virtual_hosts:
            - name: ws
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: upstream, prefix_rewrite: "/trivial" } }]
          http_filters:
$3
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
L
}
gate_filter='          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              grpc_service: { envoy_grpc: { cluster_name: gate_grpc }, timeout: 1s }'
jwks_yaml="$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$jwks")"
jwt_filter="          - name: envoy.filters.http.jwt_authn
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                pass:
                  from_cookies: [\"__Host-workspace-gate-pass\"]
                  audiences: [\"$host\"]
                  local_jwks: { inline_string: $jwks_yaml }
              rules: [{ match: { prefix: \"/\" }, requires: { provider_name: pass } }]"
cluster() { # name port http2?
  cat <<C
  - name: $1
    type: STATIC
    connect_timeout: 1s
$( [ "$3" = h2 ] && printf '    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: { http2_protocol_options: {} }\n' )
    load_assignment:
      cluster_name: $1
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } }] }]
C
}
{
  echo "static_resources:"
  echo "  listeners:"
  listener none "$p_none" ""
  listener gate "$p_gate" "$gate_filter"
  listener jwt "$p_jwt" "$jwt_filter"
  echo "  clusters:"
  cluster upstream "$gate_port" h1
  cluster gate_grpc "$grpc_port" h2
} > "$work/envoy.yaml"
"$envoy" --mode validate -c "$work/envoy.yaml" >/dev/null 2>&1 || { "$envoy" --mode validate -c "$work/envoy.yaml" >&2; exit 1; }
"$envoy" -c "$work/envoy.yaml" --disable-hot-restart --base-id $$ --log-level error --concurrency 2 &
for p in "$p_none" "$p_gate" "$p_jwt"; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$p/")"
  [ "$code" = 200 ] || { echo "envoy listener $p answered $code" >&2; exit 1; }
done
e_none="$(run envoy_none "http://127.0.0.1:$p_none/")"
e_gate="$(run envoy_ext_authz "http://127.0.0.1:$p_gate/")"
e_jwt="$(run envoy_jwt_authn "http://127.0.0.1:$p_jwt/")"
kill %2 2>/dev/null || true

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
  services:
    upstream:
      loadBalancer: { servers: [{ url: "http://$gate" }] }
T
cat > "$work/traefik.yaml" <<T
global: { checkNewVersion: false, sendAnonymousUsage: false }
entryPoints: { web: { address: "127.0.0.1:$tp" } }
providers: { file: { filename: "$work/dynamic.yaml" } }
log: { level: ERROR }
T
"$traefik" --configFile="$work/traefik.yaml" &
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tp/open")" = 200 ] && break; sleep 0.1; done
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$tp/protected")"
[ "$code" = 200 ] || { echo "traefik protected answered $code" >&2; exit 1; }
t_open="$(run traefik_open "http://127.0.0.1:$tp/open")"
t_auth="$(run traefik_forwardauth "http://127.0.0.1:$tp/protected")"

# ---- gRPC: Check vs. a trivial unary handler on the same server.
g_health="$("$target/grpc_bench" --addr "$grpc" --rpc health --conns "$conns" --secs "$secs")"
g_check="$("$target/grpc_bench" --addr "$grpc" --rpc check --conns "$conns" --secs "$secs" --host "$host" --cookie "$cookie")"

python3 - "$e_none" "$e_gate" "$e_jwt" "$t_open" "$t_auth" "$g_health" "$g_check" <<'PY'
import json, sys
def parse(s):
    n, rps, p99, bad = s.split()
    for u, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if p99.endswith(u):
            return n, float(rps), float(p99[: -len(u)]) * f, int(bad)
rows = [parse(x) for x in sys.argv[1:6]]
for r in rows:
    if r[3]:
        sys.exit(f"{r[0]}: {r[3]} non-2xx answers; the run is invalid")
h, c = json.loads(sys.argv[6]), json.loads(sys.argv[7])
if c["errors"] or h["errors"]:
    sys.exit(f"gRPC errors: check {c['errors']}, health {h['errors']}")
print("| measurement | requests/s | p99 (ms) |")
print("|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]:.0f} | {r[2]:.2f} |")
print(f"| grpc_health (trivial unary) | {h['rps']:.0f} | {h['p99_us']/1000:.2f} |")
print(f"| grpc_check (valid pass) | {c['rps']:.0f} | {c['p99_us']/1000:.2f} |")
e_none, e_gate, e_jwt, t_open, t_auth = rows
print()
print(f"- Envoy: gate ext_authz / no auth: {e_gate[1]/e_none[1]:.2f}; jwt_authn / no auth: {e_jwt[1]/e_none[1]:.2f}")
print(f"- Envoy: gate ext_authz / in-process jwt_authn: {e_gate[1]/e_jwt[1]:.2f} (goal >= 0.7); added p99 vs no auth: gate {e_gate[2]-e_none[2]:.2f} ms, jwt_authn {e_jwt[2]-e_none[2]:.2f} ms")
print(f"- Traefik: forwardAuth / no auth: {t_auth[1]/t_open[1]:.2f}; added p99 {t_auth[2]-t_open[2]:.2f} ms")
print(f"- gRPC Check / trivial unary: {c['rps']/h['rps']:.2f} (goal >= 0.7)")
PY
