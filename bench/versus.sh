#!/usr/bin/env bash
# workspace-gate side by side with oauth2-proxy (bench/oauth2-proxy.sh), in
# one run, through the same controllers, each against its no-auth baseline:
#   direct:  wrk at the auth service's own check (gate /check/nginx,
#            oauth2-proxy /oauth2/auth), kept connections
#   nginx:   rendered as ingress-nginx renders auth-url (bench/nginx_lib.sh):
#            none | gate | oauth2-proxy, kept connections (auth-keepalive)
#            and a new connection per check (the default)
#   Envoy:   none | gate ext_authz gRPC | gate HTTP mode | oauth2-proxy HTTP
#            mode | Envoy's in-process jwt_authn on the gate's pass
#   Traefik: none | forwardAuth to the gate | to oauth2-proxy, over http and
#            over https
# and the login through nginx, from the first request to landing on the
# workspace, for both (bench/login.py; the gate's through the local
# try-out's stack, examples/local.rs).
# oauth2-proxy keeps its session in a cookie; each run logs in once at the
# real OpenID provider of the tests (tests/support/oidc) to get one. Every
# request of every row carries both services' cookies.
# Usage: bench/versus.sh [seconds-per-run] [connections] [rounds] [logins]
# The controller and the workspace (a second bench server) run on CPU 1,
# wrk on CPU 0; AUTH_CPU=1 (default) puts both auth services on CPU 1 too,
# so every request's whole cost lands on the measured core; AUTH_CPU=0 puts
# them beside wrk.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-8}"
conns="${2:-64}"
rounds="${3:-3}"
logins="${4:-20}"
cd "$root"
source "$root/bench/nginx_lib.sh"
source "$root/bench/envoy_lib.sh"
source "$root/bench/traefik_lib.sh"
source "$root/bench/oauth2-proxy.sh"
for tool in wrk nginx node curl; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "$tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
envoy="$root/.venv/bin/envoy"; traefik="$root/.venv/bin/traefik"
[ -x "$envoy" ] && [ -x "$traefik" ] && [ -d "$root/tests/support/oidc/node_modules/oidc-provider" ] \
  || { echo "run scripts/install-deps.sh (envoy, traefik, the OpenID provider)" >&2; exit 1; }
# (examples/local builds the gate binary it starts, with its own features.)
cargo build --release --example bench_server --example local >&2
o2p_bin="$(oauth2_proxy_bin)"
target="${CARGO_TARGET_DIR:-$root/target}/release/examples"
work="$(mktemp -d)"
mkdir -p "$work/tmp"
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$@"; }
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return; sleep 0.1; done; echo "$1 stayed empty" >&2; exit 1; }
auth_cpu="${AUTH_CPU:-1}"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# ---- The gate and the workspace (bench servers).
taskset -c "$auth_cpu" "$target/bench_server" --grpc --https --seconds 3600 > "$work/gate.json" &
wait_file "$work/gate.json"
gate="$(json "$work/gate.json" http)"; gate_pid="$(json "$work/gate.json" pid)"
grpc="$(json "$work/gate.json" grpc)"; gate_https="$(json "$work/gate.json" https)"
ca="$(json "$work/gate.json" ca)"; pass="$(json "$work/gate.json" cookie)"
host="$(json "$work/gate.json" host)"; jwks="$(json "$work/gate.json" jwks)"
taskset -c 1 "$target/bench_server" --seconds 3600 > "$work/upstream.json" &
wait_file "$work/upstream.json"
upstream="$(json "$work/upstream.json" http)"

# ---- The OpenID provider (its stdin, a FIFO, stays open while we run) and
# oauth2-proxy, its client, with a cookie session. Its TLS listener uses the
# bench server's certificate for 127.0.0.1.
np="$(port)"; op="$(port)"; ops="$(port)"
secret="secret-$RANDOM$RANDOM"
mkfifo "$work/provider.in"; exec 3<>"$work/provider.in"
taskset -c 0 node "$root/tests/support/oidc/provider.mjs" \
  --client "oauth2-proxy:$secret:http://127.0.0.1:$np/oauth2/callback" <&3 > "$work/provider.out" 2>&1 &
provider_pid=$!
for _ in $(seq 100); do grep -q '^ready ' "$work/provider.out" && break; sleep 0.1; done
issuer="$(sed -n 's/^ready //p' "$work/provider.out")"
[ -n "$issuer" ] || { cat "$work/provider.out" >&2; exit 1; }
# Request logging off (the gate logs at warn): oauth2-proxy at its cheapest.
# Its flags serve either http or https, so a second instance with the same
# secrets serves https.
o2p_args=(
  --provider=oidc --oidc-issuer-url="$issuer" --client-id=oauth2-proxy --client-secret="$secret"
  --code-challenge-method=S256 --scope="openid profile"
  --oidc-email-claim=sub --insecure-oidc-allow-unverified-email --email-domain='*'
  --cookie-secret="$(python3 -c 'import secrets; print(secrets.token_hex(16))')" --cookie-secure=false
  --redirect-url="http://127.0.0.1:$np/oauth2/callback" --whitelist-domain="127.0.0.1:$np"
  --skip-provider-button --upstream=static://200 --reverse-proxy --set-xauthrequest
  --request-logging=false
)
taskset -c "$auth_cpu" "$o2p_bin" "${o2p_args[@]}" --http-address="127.0.0.1:$op" > "$work/oauth2-proxy.log" 2>&1 &
o2p_pid=$!
taskset -c "$auth_cpu" "$o2p_bin" "${o2p_args[@]}" --https-address="127.0.0.1:$ops" \
  --tls-cert-file="$ca" --tls-key-file="${ca%.crt}.key" > "$work/oauth2-proxy-https.log" 2>&1 &
o2p_tls_pid=$!
for u in "http://127.0.0.1:$op/ping" "https://127.0.0.1:$ops/ping"; do
  for _ in $(seq 100); do curl -s --cacert "$ca" -o /dev/null "$u" && break; sleep 0.1; done
  curl -sf --cacert "$ca" -o /dev/null "$u" || { echo "oauth2-proxy did not start: $u" >&2; cat "$work"/oauth2-proxy*.log >&2; exit 1; }
done

# ---- nginx: one server; the workspace locations of both services as
# ingress-nginx renders them, the login location with auth-signin, and
# oauth2-proxy's own /oauth2/ paths (its Ingress).
gate_nginx() { auth_addr="$gate" auth_upstream=gate auth_path='/check/nginx?host=$host' location "$@"; }
o2p_nginx() {
  auth_addr="127.0.0.1:$op" auth_upstream=oauth2_proxy auth_path=/oauth2/auth \
    auth_headers="X-Auth-Request-User X-Auth-Request-Email" location "$@"
}
{ nginx_head "$work"; cat <<NGINX
  upstream gate { server $gate; keepalive 64; }
  upstream oauth2_proxy { server 127.0.0.1:$op; keepalive 64; }
  upstream workspace { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$np;
$(location open ingress none)
$(gate_nginx gate ingress kept)
$(gate_nginx gate-fresh ingress fresh)
$(o2p_nginx o2p ingress kept)
$(o2p_nginx o2p-fresh ingress fresh)
$(auth_signin="http://\$http_host/oauth2/start" o2p_nginx o2p-login ingress kept)
    location /oauth2/ {
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://oauth2_proxy;
    }
  }
}
NGINX
} > "$work/nginx.conf"
taskset -c 1 nginx -p "$work" -c "$work/nginx.conf" &
for _ in $(seq 100); do [ -s "$work/nginx.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$np/open/" && break; sleep 0.1; done
nginx_pids="$(cat "$work/nginx.pid") $(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ')"

# ---- The login into oauth2-proxy, once per run: its session cookie.
o2p_login="$(python3 "$root/bench/login.py" "http://127.0.0.1:$np/o2p-login/" --cookie _oauth2_proxy)"
o2p_cookie="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cookie"])' "$o2p_login")"
cookies="$pass; $o2p_cookie"

# ---- Envoy: five listeners, identical but for the auth filter.
p_none="$(port)"; p_grpc="$(port)"; p_http="$(port)"; p_o2p="$(port)"; p_jwt="$(port)"
{
  echo "static_resources:"
  echo "  listeners:"
  envoy_listener none "$p_none" ""
  envoy_listener gate_grpc "$p_grpc" "$(envoy_gate_filter)"
  envoy_listener gate_http "$p_http" "$(envoy_gate_http_filter)"
  envoy_listener o2p "$p_o2p" "$(envoy_http_filter oauth2_proxy "" x-auth-request-user x-auth-request-email)"
  envoy_listener jwt "$p_jwt" "$(envoy_jwt_filter "$host" "$jwks")"
  echo "  clusters:"
  envoy_cluster upstream "${upstream##*:}" h1
  envoy_cluster gate_grpc "${grpc##*:}" h2
  envoy_cluster gate_http "${gate##*:}" h1
  envoy_cluster oauth2_proxy "$op" h1
} > "$work/envoy.yaml"
"$envoy" --mode validate -c "$work/envoy.yaml" >/dev/null 2>&1 || { "$envoy" --mode validate -c "$work/envoy.yaml" >&2; exit 1; }
taskset -c 1 "$envoy" -c "$work/envoy.yaml" --disable-hot-restart --base-id $$ --log-level error --concurrency 1 > "$work/envoy.log" 2>&1 &
envoy_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p_none/" && break; sleep 0.1; done

# ---- Traefik: one entry point, a router per auth service and scheme.
tp="$(port)"
forward_auth() { # name address headers
  printf '    %s:\n      forwardAuth:\n        address: "%s"\n        tls: { ca: "%s" }\n        trustForwardHeader: false\n        authResponseHeaders: [%s]\n' "$1" "$2" "$ca" "$3"
}
router() { # name middleware
  printf '    %s:\n      rule: "PathPrefix(`/%s/`)"\n      entryPoints: [web]\n      middlewares: [%strivial]\n      service: upstream\n' "$1" "$1" "${2:+$2, }"
}
gate_headers="X-Workspace-User, X-Workspace-User-Id, X-Workspace-Id, Cookie, Authorization"
o2p_headers="X-Auth-Request-User, X-Auth-Request-Email"
{
  echo "http:"
  echo "  middlewares:"
  forward_auth gate "http://$gate/check/traefik" "$gate_headers"
  forward_auth gate_https "https://$gate_https/check/traefik" "$gate_headers"
  forward_auth o2p "http://127.0.0.1:$op/oauth2/auth" "$o2p_headers"
  forward_auth o2p_https "https://127.0.0.1:$ops/oauth2/auth" "$o2p_headers"
  echo "    trivial:"
  echo "      replacePath: { path: /trivial }"
  echo "  routers:"
  router open ""
  for m in gate gate_https o2p o2p_https; do router "$m" "$m"; done
  echo "  services:"
  echo "    upstream:"
  echo "      loadBalancer: { servers: [{ url: \"http://$upstream\" }] }"
} > "$work/dynamic.yaml"
traefik_start "$traefik" "$work" "$tp"
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tp/open/")" = 200 ] && break; sleep 0.1; done

# ---- The rows: name url auth-pid controller-pids ("-": none).
n="http://127.0.0.1:$np" e="http://127.0.0.1" t="http://127.0.0.1:$tp"
rows="direct_gate http://$gate/check/nginx?host=$host $gate_pid -
direct_o2p http://127.0.0.1:$op/oauth2/auth $o2p_pid -
nginx_none $n/open/ - $nginx_pids
nginx_gate $n/gate/ $gate_pid $nginx_pids
nginx_o2p $n/o2p/ $o2p_pid $nginx_pids
envoy_none $e:$p_none/ - $envoy_pid
envoy_gate_grpc $e:$p_grpc/ $gate_pid $envoy_pid
envoy_gate_http $e:$p_http/ $gate_pid $envoy_pid
envoy_o2p_http $e:$p_o2p/ $o2p_pid $envoy_pid
envoy_jwt_authn $e:$p_jwt/ - $envoy_pid
traefik_none $t/open/ - $traefik_pid
traefik_gate $t/gate/ $gate_pid $traefik_pid
traefik_o2p $t/o2p/ $o2p_pid $traefik_pid
traefik_gate_https $t/gate_https/ $gate_pid $traefik_pid
traefik_o2p_https $t/o2p_https/ $o2p_tls_pid $traefik_pid
nginx_fresh_gate $n/gate-fresh/ $gate_pid $nginx_pids
nginx_fresh_o2p $n/o2p-fresh/ $o2p_pid $nginx_pids"
row() { awk -v n="$1" '$1 == n' <<< "$rows"; }
groups="direct_gate,direct_o2p nginx_none,nginx_gate,nginx_o2p
envoy_none,envoy_gate_grpc,envoy_gate_http,envoy_o2p_http,envoy_jwt_authn
traefik_none,traefik_gate,traefik_o2p,traefik_gate_https,traefik_o2p_https
nginx_fresh_gate,nginx_fresh_o2p"

# Every row answers the workspace's own 200 with both cookies; the rows of
# an auth service refuse a request without its cookie (only the other's).
# wrk at a check sends the headers nginx's auth subrequest would.
direct=(-H "X-Original-URL: http://$host/" -H "X-Original-Method: GET")
extra() { case "$1" in direct_*) printf '%s\n' "${direct[@]}" ;; esac; }
code() { # cookies url row
  local -a x; mapfile -t x < <(extra "$3")
  curl -s -o "$work/body" -w '%{http_code}' -H "Host: $host" -H "Cookie: $1" "${x[@]}" "$2"
}
for g in $groups; do
  for name in ${g//,/ }; do
    read -r _ url auth _ <<< "$(row "$name")"
    case "$name" in
      direct_gate) [ "$(code "$cookies" "$url" "$name")" = 200 ] ;;
      direct_o2p) [ "$(code "$cookies" "$url" "$name")" = 202 ] && [ "$(code "$pass" "$url" "$name")" = 401 ] ;;
      *) [ "$(code "$cookies" "$url" "$name")" = 200 ] && [ "$(cat "$work/body")" = ok ] ;;
    esac || { echo "$name: $url did not let the request through ($(code "$cookies" "$url" "$name"))" >&2; exit 1; }
    case "$name" in
      *_o2p*) without="$pass" ;;
      *gate* | *jwt*) without="$o2p_cookie" ;;
      *) continue ;;
    esac
    c="$(code "$without" "$url" "$name")"
    case "$c" in 2*) echo "$name: $url let a request without its cookie through ($c)" >&2; exit 1 ;; esac
    echo "# $name: $(code "$cookies" "$url" "$name") with its cookie, $c without" >&2
  done
done

ticks() { local t=0 p; for p in "$@"; do [ "$p" = - ] || t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
rss() { [ "$1" = - ] && echo 0 || awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
run() { # name -> "name rps p50 p99 non2xx requests auth_ticks controller_ticks auth_rss_kb"
  local name url auth ctl a0 c0 a1 c1 mid x
  read -r name url auth ctl <<< "$(row "$1")"
  mapfile -t x < <(extra "$name")
  a0="$(ticks "$auth")"; c0="$(ticks $ctl)"
  taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" --latency -H "Host: $host" -H "Cookie: $cookies" "${x[@]}" "$url" > "$work/$name.txt" &
  sleep "$(python3 -c "print($secs / 2)")"; mid="$(rss "$auth")"
  wait $!
  a1="$(ticks "$auth")"; c1="$(ticks $ctl)"
  echo "$name $(awk '/^Requests\/sec/ {print $2}' "$work/$name.txt") $(awk '$1=="50%" {print $2}' "$work/$name.txt") $(awk '$1=="99%" {print $2}' "$work/$name.txt") $(awk '/Non-2xx/ {print $4}' "$work/$name.txt" | grep . || echo 0) $(awk '/requests in/ {print $1}' "$work/$name.txt") $((a1 - a0)) $((c1 - c0)) $mid"
}
idle_gate="$(rss "$gate_pid")"; idle_o2p="$(rss "$o2p_pid")"
# Interleaved rounds: every group in each round, its rows in alternating
# order; the rows with a connection per check last in a round.
for i in $(seq "$rounds"); do
  for g in $groups; do
    names="${g//,/ }"
    [ $((i % 2)) = 1 ] || names="$(tr ' ' '\n' <<< "$names" | tac | tr '\n' ' ')"
    for name in $names; do run "$name" >> "$work/results"; done
  done
  echo "# round $i done" >&2
done
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
echo "memory gate $idle_gate $(hwm "$gate_pid")" >> "$work/memory"
echo "memory o2p $idle_o2p $(hwm "$o2p_pid")" >> "$work/memory"

# ---- The login, both behind nginx: first request to landing on the
# workspace, redirects and CPU (auth service, nginx, the provider) over
# $logins logins. oauth2-proxy's here; the gate's through the local
# try-out's stack (TLS nginx, its own provider, the gate in gitlab mode).
login_cpu() { # label url auth-pid nginx-pids provider-pid login.py-args...
  local label="$1" url="$2" a="$3" ng="$4" pr="$5" a0 n0 p0 out
  shift 5
  a0="$(ticks $a)"; n0="$(ticks $ng)"; p0="$(ticks $pr)"
  out="$(python3 "$root/bench/login.py" "$url" --times "$logins" "$@")"
  echo "login $label $(ticks $a) $a0 $(ticks $ng) $n0 $(ticks $pr) $p0 $out" >> "$work/logins"
}
login_cpu o2p "http://127.0.0.1:$np/o2p-login/" "$o2p_pid" "$nginx_pids" "$provider_pid"
kill "$envoy_pid" "$traefik_pid" 2>/dev/null || true
lp="$(port)"
(cd "$work" && exec "$target/local" "$lp") > "$work/local.out" 2>&1 &
local_pid=$!
# It builds the gate binary first (cargo), which may take minutes.
for _ in $(seq 6000); do grep -q "Files:" "$work/local.out" && break; sleep 0.1; done
grep -q 'Files:' "$work/local.out" || { cat "$work/local.out" >&2; exit 1; }
port_pid() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' '; }
lgate="$(sed -n 's|^ *Gate: *http://\([0-9.:]*\) .*|\1|p' "$work/local.out")"
lissuer="$(sed -n 's|^ *Provider: *http://||p' "$work/local.out")"
lnginx="$(port_pid "$lp")"
lca="$(grep -o -- '--cacert [^ ]*' "$work/local.out" | head -1 | cut -d' ' -f2)"
domain="${host#*.}"
login_cpu gate "https://$host:$lp/" "$(port_pid "${lgate##*:}")" "$lnginx" "$(port_pid "${lissuer##*:}")" \
  --ca "$lca" --user alice --resolve "$host:$lp:127.0.0.1" --resolve "$domain:$lp:127.0.0.1"
kill "$local_pid"; wait "$local_pid" 2>/dev/null || true
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 "$root/bench/versus_report.py" "$work/results" "$work/memory" "$work/logins" "$rounds" "$auth_cpu" "$logins"
