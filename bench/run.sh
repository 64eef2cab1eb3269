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
  run check "http://$gate/check/nginx" "${hdrs[@]}" "${pipe[@]}" >> "$work/results"
done
loaded="$(rss)"

# Real nginx: one server, three locations with the same upstream: /open has
# no auth; /protected and /protected-fresh have auth_request as
# ingress-nginx renders it, with and without auth-keepalive.
mkdir -p "$work/tmp"
protected() { # location name, how the auth subrequest reaches the gate
  cat <<LOC
    location = /_external-auth-$1 {
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL \$scheme://\$http_host\$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Sent-From "nginx-ingress-controller";
      proxy_http_version 1.1;
$2
    }
    location /$1/ {
      auth_request /_external-auth-$1;
      auth_request_set \$authHeader0 \$upstream_http_x_workspace_user;
      proxy_set_header X-Workspace-User \$authHeader0;
      auth_request_set \$authHeader1 \$upstream_http_cookie;
      proxy_set_header Cookie \$authHeader1;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://workspace/trivial;
    }
LOC
}
# auth-keepalive: an upstream block with keepalive, connections kept open.
kept='      proxy_set_header Connection "";
      proxy_pass http://gate/check/nginx;'
# ingress-nginx's default: the auth-url through a variable, so every check
# opens a new connection to the gate.
fresh="      set \$target http://$gate/check/nginx;
      proxy_pass \$target;"
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
  upstream gate { server $gate; keepalive 64; }
  upstream workspace { server $gate; keepalive 64; }
  server {
    listen 127.0.0.1:$nport;
$(protected protected "$kept")
$(protected protected-fresh "$fresh")
    location /open/ {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://workspace/trivial;
    }
  }
}
NGINX
taskset -c 1 nginx -p "$work" -c "$work/nginx.conf" &
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$nport/open/" && break; sleep 0.1; done
for loc in protected protected-fresh; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" -H "Cookie: $cookie" "http://127.0.0.1:$nport/$loc/")"
  [ "$code" = 200 ] || { echo "$loc location answered $code, expected 200" >&2; exit 1; }
done
echo "# through nginx (wrk -t1 -c$conns -d${secs}s)"
pids="$pid $(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ') $(cat "$work/nginx.pid")"
for _ in $(seq "$rounds"); do
  run nginx_open "http://127.0.0.1:$nport/open/" -H "Host: $host" -H "Cookie: $cookie" >> "$work/results"
  run nginx_auth "http://127.0.0.1:$nport/protected/" -H "Host: $host" -H "Cookie: $cookie" >> "$work/results"
  run nginx_auth_fresh "http://127.0.0.1:$nport/protected-fresh/" -H "Host: $host" -H "Cookie: $cookie" >> "$work/results"
done

peak="$(hwm)"
python3 - "$work/results" "$rounds" "$idle" "$loaded" "$peak" <<'PY'
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
print(f"Medians of {sys.argv[2]} interleaved rounds.")
print()
print("| measurement | requests/s | p99 (ms) | server CPU per request (µs) | of which the gate (µs) | server cores busy |")
print("|---|---|---|---|---|---|")
for n, (r, p, us, busy, gate_us) in med.items():
    print(f"| {n} | {r:.0f} | {p:.2f} | {us:.1f} | {gate_us:.1f} | {busy:.2f} |")
print()
b, c, o, p = med["trivial"], med["check"], med["nginx_open"], med["nginx_auth"]
print(f"- check/trivial throughput ratio: {c[0]/b[0]:.2f} (goal >= 0.8); server CPU per request, trivial/check: {b[2]/c[2]:.2f}")
f = med["nginx_auth_fresh"]
print(f"- nginx with/without auth_request throughput ratio: {p[0]/o[0]:.2f} (goal >= 0.5); with a new connection per check (no auth-keepalive): {f[0]/o[0]:.2f}")
print(f"- added p99 through nginx at the run's connections: {p[1]-o[1]:.2f} ms")
print(f"- CPU per request through nginx, without/with auth_request: nginx {o[2]-o[4]:.1f}/{p[2]-p[4]:.1f} µs, gate {o[4]:.1f}/{p[4]:.1f} µs")
per_round = lambda a, b: ", ".join(f"{x[0]/y[0]:.2f}" for x, y in zip(runs[a], runs[b]))
print(f"- per round: check/trivial {per_round('check', 'trivial')}; nginx auth/open {per_round('nginx_auth', 'nginx_open')}; fresh/open {per_round('nginx_auth_fresh', 'nginx_open')}")
print(f"- gate RSS: idle {idle/1024:.1f} MiB, after the gate-alone load {loaded/1024:.1f} MiB, peak {peak/1024:.1f} MiB")
PY
