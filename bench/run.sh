#!/usr/bin/env bash
# Load benchmarks of the check path on loopback, each against a baseline
# measured in the same run:
#   1. /check/nginx with a valid pass vs. a trivial 200 handler in the same
#      process (wrk straight at the gate);
#   2. real nginx, same upstream, with and without auth_request (with
#      connections to the gate kept open, as ingress-nginx's auth-keepalive
#      renders it, and with a new connection per check, its default);
#   3. resident memory of the gate at idle and after the load.
# Usage: bench/run.sh [seconds-per-run] [connections] [rounds]
# Through nginx, the upstream (a second bench server standing for the
# workspace) runs on nginx's CPU 1. GATE_CPU=1 (default) puts the gate there
# too, so every request's whole cost lands on one core; GATE_CPU=0 moves it
# beside wrk, leaving nginx and the workspace a core of their own, as when
# the gate runs in its own pods.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-10}"
conns="${2:-64}"
rounds="${3:-3}"
cd "$root"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --example bench_server --example grpc_bench >&2
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true' EXIT

target="${CARGO_TARGET_DIR:-$root/target}"
taskset -c 1 "$target/release/examples/bench_server" --seconds 3600 > "$work/server.json" &
for _ in $(seq 50); do [ -s "$work/server.json" ] && break; sleep 0.1; done
info="$(head -1 "$work/server.json")"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$info" "$1"; }
gate="$(field http)"; pid="$(field pid)"; cookie="$(field cookie)"; host="$(field host)"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
gate_cpu="${GATE_CPU:-1}"

cpu() { # CPU ticks (1/100 s) used so far by the processes in $pids
  local t=0 p
  for p in $pids; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
run() { # name, url, extra wrk args... -> "name rps p99 non2xx cpu_ticks requests gate_ticks"
  local name="$1" url="$2"; shift 2
  local before after gate_before gate_after
  before="$(cpu)"; gate_before="$(pids="$pid" cpu)"
  taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" "$url" > "$work/$name.txt"
  after="$(cpu)"; gate_after="$(pids="$pid" cpu)"
  local rps p99 non2xx total
  rps="$(awk '/^Requests\/sec/ {print $2}' "$work/$name.txt")"
  p99="$(awk '$1=="99%" {print $2}' "$work/$name.txt")"
  non2xx="$(awk '/Non-2xx/ {print $4}' "$work/$name.txt")"
  total="$(awk '/requests in/ {print $1}' "$work/$name.txt")"
  echo "$name $rps $p99 ${non2xx:-0} $((after - before)) $total $((gate_after - gate_before))"
}

pids="$pid"
idle="$(rss)"
echo "# gate alone (wrk -t1 -c$conns -d${secs}s)"
# Both get the same request headers, as nginx's auth subrequest sends them.
hdrs=(-H "X-Original-URL: https://$host/src/main.rs?x=1" -H "X-Original-Method: GET" -H "Cookie: theme=dark; $cookie")
# Pipelined (8 deep): the gate, alone on its core, is the bottleneck, not wrk.
pipe=(-s "$root/bench/pipeline.lua")
for _ in $(seq "$rounds"); do
  run trivial "http://$gate/trivial" "${hdrs[@]}" "${pipe[@]}" >> "$work/results"
  run check "http://$gate/check/nginx?host=$host" "${hdrs[@]}" "${pipe[@]}" >> "$work/results"
done
loaded="$(rss)"

# The workspace: a second bench server's /trivial, on nginx's core.
taskset -c 1 "$target/release/examples/bench_server" --seconds 3600 > "$work/upstream.json" &
for _ in $(seq 50); do [ -s "$work/upstream.json" ] && break; sleep 0.1; done
upstream="$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["http"])' < "$work/upstream.json")"
upstream_pid="$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["pid"])' < "$work/upstream.json")"
taskset -a -p -c "$gate_cpu" "$pid" >/dev/null

# Real nginx: one server, five locations with the same upstream. Three
# are rendered as ingress-nginx renders a workspace Ingress (its proxy
# headers on every location, the access log of every request in its default
# format, the auth subrequest location of auth-url, kept upstream
# connections to the workspace as its default upstream-keepalive-connections
# gives):
#   /open/             no auth;
#   /protected/        auth-url with auth-keepalive: kept connections to the gate;
#   /protected-fresh/  auth-url without it (the default): the URL through a
#                      variable, a new connection to the gate per check.
# Two are a minimal nginx (no access log, only the headers the check needs),
# to show how much the ratio owes to nginx's own per-request work:
#   /lean-open/, /lean-protected/ (kept connections).
mkdir -p "$work/tmp"
location() { # name, style (ingress|lean), auth (none|kept|fresh)
  local name="$1" style="$2" auth="$3"
  if [ "$auth" != none ]; then
    echo "    location = /_external-auth-$name {"
    echo "      internal;"
    echo "      access_log off;"
    echo "      proxy_pass_request_body off;"
    echo "      proxy_set_header Content-Length \"\";"
    if [ "$style" = ingress ]; then cat <<LOC
      proxy_set_header X-Forwarded-Proto "";
      proxy_set_header X-Request-ID \$req_id;
      proxy_set_header Host $gate;
      proxy_set_header X-Original-URL \$scheme://\$http_host\$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Sent-From "nginx-ingress-controller";
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Auth-Request-Redirect \$request_uri;
      proxy_buffering off;
      proxy_buffer_size 4k;
      proxy_buffers 4 4k;
      proxy_request_buffering on;
      proxy_pass_request_headers on;
      client_max_body_size 1m;
LOC
    else cat <<LOC
      proxy_set_header X-Original-URL \$scheme://\$http_host\$request_uri;
      proxy_set_header X-Original-Method \$request_method;
LOC
    fi
    echo "      proxy_http_version 1.1;"
    if [ "$auth" = kept ]; then
      # auth-keepalive: an upstream block with keepalive.
      echo "      proxy_set_header Connection \"\";"
      echo "      proxy_pass http://gate/check/nginx?host=\$host;"
    else
      # ingress-nginx's default: the auth-url through a variable.
      echo "      set \$target http://$gate/check/nginx?host=\$host;"
      echo "      proxy_pass \$target;"
    fi
    echo "    }"
  fi
  echo "    location /$name/ {"
  if [ "$auth" != none ]; then
    echo "      auth_request /_external-auth-$name;"
    if [ "$style" = ingress ]; then cat <<LOC
      auth_request_set \$auth_cookie \$upstream_http_set_cookie;
      add_header Set-Cookie \$auth_cookie;
      auth_request_set \$authHeader0 \$upstream_http_x_workspace_user;
      proxy_set_header 'X-Workspace-User' \$authHeader0;
      auth_request_set \$authHeader1 \$upstream_http_x_workspace_user_id;
      proxy_set_header 'X-Workspace-User-Id' \$authHeader1;
      auth_request_set \$authHeader2 \$upstream_http_x_workspace_id;
      proxy_set_header 'X-Workspace-Id' \$authHeader2;
      auth_request_set \$authHeader3 \$upstream_http_cookie;
      proxy_set_header 'Cookie' \$authHeader3;
      auth_request_set \$authHeader4 \$upstream_http_authorization;
      proxy_set_header 'Authorization' \$authHeader4;
LOC
    else cat <<LOC
      auth_request_set \$authHeader0 \$upstream_http_x_workspace_user;
      proxy_set_header X-Workspace-User \$authHeader0;
      auth_request_set \$authHeader1 \$upstream_http_cookie;
      proxy_set_header Cookie \$authHeader1;
LOC
    fi
  fi
  if [ "$style" = ingress ]; then cat <<LOC
      set \$proxy_upstream_name "ns-ws-1-60001";
      proxy_set_header Host \$best_http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Request-ID \$req_id;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$best_http_host;
      proxy_set_header X-Forwarded-Port \$pass_server_port;
      proxy_set_header X-Forwarded-Proto \$pass_access_scheme;
      proxy_set_header X-Forwarded-Scheme \$pass_access_scheme;
      proxy_set_header X-Scheme \$pass_access_scheme;
      proxy_set_header X-Original-Forwarded-For \$http_x_forwarded_for;
      proxy_set_header Proxy "";
      proxy_connect_timeout 5s;
      proxy_send_timeout 60s;
      proxy_read_timeout 60s;
      proxy_buffering off;
      access_log $work/access.log upstreaminfo;
LOC
  else
    echo "      proxy_set_header Connection \"\";"
  fi
  echo "      proxy_http_version 1.1;"
  echo "      proxy_pass http://workspace/trivial;"
  echo "    }"
}
nport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp/body; proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/f; uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;
  # ingress-nginx's log format and maps (nginx.tmpl, default configmap).
  log_format upstreaminfo '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" \$request_length \$request_time [\$proxy_upstream_name] \$upstream_addr \$upstream_status \$req_id';
  map \$http_x_request_id \$req_id { default \$http_x_request_id; "" \$request_id; }
  map \$http_upgrade \$connection_upgrade { default upgrade; "" ""; }
  map "" \$pass_access_scheme { default \$scheme; }
  map "" \$pass_server_port { default \$server_port; }
  map \$http_host \$best_http_host { default \$http_host; "" \$host; }
  upstream gate { server $gate; keepalive 64; }
  upstream workspace { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$nport;
$(location open ingress none)
$(location protected ingress kept)
$(location protected-fresh ingress fresh)
$(location lean-open lean none)
$(location lean-protected lean kept)
  }
}
NGINX
taskset -c 1 nginx -p "$work" -c "$work/nginx.conf" &
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$nport/open/" && break; sleep 0.1; done
for loc in open protected protected-fresh lean-open lean-protected; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$nport/$loc/")"
  [ "$code" = 200 ] || { echo "$loc location answered $code, expected 200" >&2; exit 1; }
done
echo "# through nginx (wrk -t1 -c$conns -d${secs}s; the gate on CPU $gate_cpu)"
pids="$pid $upstream_pid $(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ') $(cat "$work/nginx.pid")"
# Kept connections first, each pair in alternating order; the runs with a
# connection per check come last, as their tens of thousands of sockets in
# TIME-WAIT would otherwise weigh on the runs after them.
at() { run "$1" "http://127.0.0.1:$nport/$2/" -H "Host: $host" -H "Cookie: $cookie" >> "$work/results"; }
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then
    at nginx_open open; at nginx_auth protected; at lean_open lean-open; at lean_auth lean-protected
  else
    at lean_auth lean-protected; at lean_open lean-open; at nginx_auth protected; at nginx_open open
  fi
done
for _ in $(seq "$rounds"); do at nginx_auth_fresh protected-fresh; done

peak="$(hwm)"
python3 - "$work/results" "$rounds" "$idle" "$loaded" "$peak" "$gate_cpu" <<'PY'
import statistics, sys
def p99_ms(v):
    for u, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(u):
            return float(v[: -len(u)]) * f
runs = {}
secs = None
for line in open(sys.argv[1]):
    n, rps, p99, bad, ticks, total, gate_ticks = line.split()
    if int(bad):
        sys.exit(f"{n}: {bad} non-2xx answers; the run is invalid")
    # server CPU per request (µs), server cores busy, the gate's share (µs)
    us = int(ticks) * 10_000 / max(int(total), 1)
    gate_us = int(gate_ticks) * 10_000 / max(int(total), 1)
    runs.setdefault(n, []).append((float(rps), p99_ms(p99), us, int(ticks) / 100 * float(rps) / max(int(total), 1), gate_us))
med = {n: tuple(statistics.median(x[i] for x in v) for i in range(5)) for n, v in runs.items()}
idle, loaded, peak = (int(x) for x in sys.argv[3:6])
print(f"Medians of {sys.argv[2]} interleaved rounds; through nginx, the gate on CPU {sys.argv[6]}.")
print()
print("| measurement | requests/s | p99 (ms) | server CPU per request (µs) | of which the gate (µs) | server cores busy |")
print("|---|---|---|---|---|---|")
for n, (r, p, us, busy, gate_us) in med.items():
    print(f"| {n} | {r:.0f} | {p:.2f} | {us:.1f} | {gate_us:.1f} | {busy:.2f} |")
print()
b, c, o, p = med["trivial"], med["check"], med["nginx_open"], med["nginx_auth"]
print(f"- check/trivial throughput ratio: {c[0]/b[0]:.2f} (goal >= 0.8); server CPU per request, trivial/check: {b[2]/c[2]:.2f}")
f = med["nginx_auth_fresh"]
lo, la = med["lean_open"], med["lean_auth"]
print(f"- nginx as ingress-nginx renders it, with/without auth_request throughput ratio: {p[0]/o[0]:.2f} (goal >= 0.5); with a new connection per check (no auth-keepalive): {f[0]/o[0]:.2f}")
print(f"- minimal nginx (no access log, only the check's headers), with/without auth_request: {la[0]/lo[0]:.2f}")
print(f"- added p99 through nginx at the run's connections: {p[1]-o[1]:.2f} ms")
print(f"- CPU per request through nginx, without/with auth_request: nginx and the workspace {o[2]-o[4]:.1f}/{p[2]-p[4]:.1f} µs, gate {o[4]:.1f}/{p[4]:.1f} µs")
per_round = lambda a, b: ", ".join(f"{x[0]/y[0]:.2f}" for x, y in zip(runs[a], runs[b]))
print(f"- per round: check/trivial {per_round('check', 'trivial')}; nginx auth/open {per_round('nginx_auth', 'nginx_open')}; fresh/open {per_round('nginx_auth_fresh', 'nginx_open')}; minimal {per_round('lean_auth', 'lean_open')}")
print(f"- gate RSS: idle {idle/1024:.1f} MiB, after the gate-alone load {loaded/1024:.1f} MiB, peak {peak/1024:.1f} MiB")
PY
