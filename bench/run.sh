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
source "$root/bench/nginx_lib.sh"
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
# The checks go to the gate (bench/nginx_lib.sh).
auth_addr="$gate" auth_upstream=gate auth_path='/check/nginx?host=$host'
mkdir -p "$work/tmp"
nport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
{ nginx_head "$work"; cat <<NGINX
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
} > "$work/nginx.conf"
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
