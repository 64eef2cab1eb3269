#!/usr/bin/env bash
# The SSH gateway (listen.ssh) against the same sshd reached directly, in
# one run on loopback, with the same OpenSSH client and options both ways:
#   1. scp of a large file (1 GiB by default), upload and download, with the
#      classic protocol (scp -O) and with SFTP (scp's default): throughput,
#      the gate/direct ratio, and CPU per MiB of the gate, sshd and the
#      client;
#   2. login time: the wall time of `ssh <host> true`;
#   3. the gate's resident memory idle and with many sessions open.
# Transfers and logins are interleaved in rounds, gate and direct in
# alternating order. The sshd is Debian's, started here with a config of
# its own; the gate runs with owner keys from its workspaces file
# (authorization.mode owner-annotation) and the tests' OpenID provider.
# Usage: bench/ssh.sh [rounds] [logins-per-round] [sessions]
#   SIZE_MIB: size of the transferred file (default 1024)
#   WORKSPACE_GATE_BIN: the gate binary (default
#     target/release/workspace-gate: cargo build --release --bin workspace-gate)
#   CIPHER: a cipher for the client to ask for (ssh -c) on both paths; the
#     gate chooses its own hop to sshd (AES-GCM first, src/ssh/backend.rs)
#   PERF=1: afterwards, one more (untimed) upload through the gate under
#     `perf record`, and the gate's hottest symbols.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-3}"
logins="${2:-20}"
sessions="${3:-200}"
size_mib="${SIZE_MIB:-1024}"
gate_bin="${WORKSPACE_GATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/workspace-gate}"
[ -x "$gate_bin" ] || { echo "no gate binary at $gate_bin: cargo build --release --bin workspace-gate, or set WORKSPACE_GATE_BIN" >&2; exit 1; }
for tool in ssh scp ssh-keygen node python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
sshd_bin=/usr/sbin/sshd # sshd re-executes itself: an absolute path
[ -x "$sshd_bin" ] || { echo "sshd is missing: apt-get install -y openssh-server" >&2; exit 1; }
[ -d "$root/tests/support/oidc/node_modules/oidc-provider" ] || { echo "run scripts/install-deps.sh (the OpenID provider)" >&2; exit 1; }

work="$(mktemp -d)"
# The transferred files live on tmpfs when there is one, so that disk
# writeback does not compete for the CPU with the relay being measured.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then data="$(mktemp -d -p /dev/shm)"; else data="$work/data"; mkdir "$data"; fi
session_pids=()
cleanup() {
  local p
  for p in "${session_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # shellcheck disable=SC2046
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work" "$data"
}
trap cleanup EXIT
unset SSH_AUTH_SOCK DISPLAY
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # port what
  for _ in $(seq 200); do (: < "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done
  echo "$2 is not listening on 127.0.0.1:$1" >&2; exit 1
}
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; } # own and reaped children's CPU, 1/CLK_TCK s
steal() { awk '$1 == "cpu" {print $9}' /proc/stat; }              # CPU time stolen by the hypervisor, all CPUs
busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # CPU time used by every process, all CPUs
reaped() { awk '{print $16 + $17}' "/proc/$$/stat"; }            # CPU of the script's finished children
rss() { awk '/^VmRSS/ {print $2}' "/proc/$gate_pid/status"; }   # KiB
hz="$(getconf CLK_TCK)"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
# The gate reads WORKSPACE_GATE_* as configuration: only its file counts.
gate=(env)
for v in $(compgen -e | grep '^WORKSPACE_GATE_' || true); do gate+=(-u "$v"); done
gate+=("$gate_bin")
backend_user="$(id -un)"

# ---- Keys: sshd's host key, the gate's (from the binary), the key the
# gate logs in to sshd with, and the user's.
newkey() { ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$work/$1"; }
newkey sshd_host sshd-host; newkey backend gate-backend; newkey user bench-user
"${gate[@]}" keygen --ssh > "$work/gate_host"; chmod 600 "$work/gate_host"
ssh-keygen -y -f "$work/gate_host" > "$work/gate_host.pub"
# The same sshd admits the gate (its backend key) and the user directly.
cat "$work/backend.pub" "$work/user.pub" > "$work/authorized_keys"

# ---- sshd. MaxStartups is raised from its default 10:30:100, which drops
# connections at random once more than 10 are unauthenticated at once
# (the sessions phase opens them in batches on top of that). MaxSessions
# limits channels per connection, not connections: every client here
# opens its own connection.
sshd_config() { # port loglevel
  cat <<EOF
ListenAddress 127.0.0.1:$1
HostKey $work/sshd_host
PidFile none
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
MaxStartups 1000
Subsystem sftp internal-sftp
LogLevel $2
EOF
}
[ "$backend_user" = root ] && mkdir -p /run/sshd
sshd_port="$(port)"; probe_port="$(port)"
sshd_config "$sshd_port" INFO > "$work/sshd_config"
"$sshd_bin" -D -e -f "$work/sshd_config" 2> "$work/sshd.log" &
sshd_pid=$!
# A second sshd that logs the key exchange, to see which cipher the gate's
# own hop to sshd negotiates; stopped before any measurement.
sshd_config "$probe_port" DEBUG1 > "$work/probe_config"
"$sshd_bin" -D -e -f "$work/probe_config" 2> "$work/probe.log" &
probe_pid=$!
wait_port "$sshd_port" sshd; wait_port "$probe_port" "the probe sshd"

# ---- The OpenID provider (its stdin, a FIFO, stays open while we run):
# the gate's configuration requires one; SSH key logins never call it.
secret="secret-$RANDOM$RANDOM"
mkfifo "$work/provider.in"; exec 3<>"$work/provider.in"
node "$root/tests/support/oidc/provider.mjs" \
  --client "workspace-gate:$secret:https://workspaces.test/auth/callback" <&3 > "$work/provider.out" 2>&1 &
for _ in $(seq 100); do grep -q '^ready ' "$work/provider.out" && break; sleep 0.1; done
issuer="$(sed -n 's/^ready //p' "$work/provider.out")"
[ -n "$issuer" ] || { cat "$work/provider.out" >&2; exit 1; }

# ---- The gate: ws-1 is the workspace measured, ws-probe the probe sshd;
# the user's key is the owner's key of both.
user_pub="$(cat "$work/user.pub")"
cat > "$work/workspaces.yaml" <<EOF
workspaces:
  - id: "1"
    name: ws-1
    namespace: bench
    owner: { id: "alice", username: alice }
    hosts: [ws-1.workspaces.test]
    ssh: { backend: "127.0.0.1:$sshd_port", owner_keys: ["$user_pub"] }
  - id: "2"
    name: ws-probe
    namespace: bench
    owner: { id: "alice", username: alice }
    hosts: [ws-probe.workspaces.test]
    ssh: { backend: "127.0.0.1:$probe_port", owner_keys: ["$user_pub"] }
EOF
head -c 32 /dev/urandom | base64 > "$work/gate-key"
printf '%s' "$secret" > "$work/client-secret"
gate_port="$(port)"; admin="127.0.0.1:$(port)"
cat > "$work/gate.yaml" <<EOF
auth_host: workspaces.test
workspace_domain: workspaces.test
public_scheme: https
public_port: 443
listen:
  http: 127.0.0.1:$(port)
  admin: $admin
  ssh: 127.0.0.1:$gate_port
oidc:
  issuer: $issuer
  client_id: workspace-gate
  client_secret_file: $work/client-secret
keys:
  files: [$work/gate-key]
workspaces:
  source: file
  file: $work/workspaces.yaml
ssh:
  host_key_files: [$work/gate_host]
  backend_user: $backend_user
  backend_key_file: $work/backend
authorization:
  mode: owner-annotation
log:
  format: json
EOF
"${gate[@]}" check-config --config "$work/gate.yaml" > "$work/check-config.out" 2>&1 \
  || { cat "$work/check-config.out" >&2; exit 1; }
"${gate[@]}" serve --config "$work/gate.yaml" > "$work/gate.log" 2>&1 &
gate_pid=$!
for _ in $(seq 200); do
  curl -s "http://$admin/readyz" 2>/dev/null | grep -q 'oidc: true' && break
  kill -0 "$gate_pid" 2>/dev/null || { tail -20 "$work/gate.log" >&2; exit 1; }
  sleep 0.1
done
curl -s "http://$admin/readyz" | grep -q 'oidc: true' || { echo "the gate is not ready" >&2; tail -20 "$work/gate.log" >&2; exit 1; }
metric() { curl -s "http://$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# ---- The client: the same options both ways; only port and user differ.
{
  echo "[127.0.0.1]:$gate_port $(cat "$work/gate_host.pub")"
  echo "[127.0.0.1]:$sshd_port $(cat "$work/sshd_host.pub")"
  echo "[127.0.0.1]:$probe_port $(cat "$work/sshd_host.pub")"
} > "$work/known_hosts"
opts=(-F /dev/null -i "$work/user" -o IdentitiesOnly=yes -o BatchMode=yes
  -o PreferredAuthentications=publickey -o UserKnownHostsFile="$work/known_hosts"
  -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
  -o ControlMaster=no -o ControlPath=none -o ConnectTimeout=20)
[ -n "${CIPHER:-}" ] && opts+=(-c "$CIPHER")
declare -A port_of=([gate]="$gate_port" [direct]="$sshd_port") user_of=([gate]=ws-1 [direct]="$backend_user")
kex() { # what the client's `ssh -v` negotiated: "<kex algorithm> <cipher>"
  ssh "${opts[@]}" -v -p "$1" "$2@127.0.0.1" true 2>&1 | tr -d '\r' > "$work/kex.txt"
  echo "$(sed -n 's/.*kex: algorithm: \([^ ]*\).*/\1/p' "$work/kex.txt" | head -1) $(sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' "$work/kex.txt" | head -1)"
}
{
  echo "client-gate $(kex "$gate_port" ws-1)"
  echo "client-sshd $(kex "$sshd_port" "$backend_user")"
  ssh "${opts[@]}" -p "$gate_port" ws-probe@127.0.0.1 true 2> /dev/null # (sshd's debug lines)
  for _ in $(seq 50); do grep -q 'kex: client->server cipher' "$work/probe.log" && break; sleep 0.1; done
  echo "gate-sshd $(sed -n 's/.*kex: algorithm: \([^ ]*\).*/\1/p' "$work/probe.log" | head -1) $(sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' "$work/probe.log" | head -1)"
} > "$work/ciphers"
kill "$probe_pid"; wait "$probe_pid" 2>/dev/null || true
# OpenSSH prefers a post-quantum key exchange that the gate's SSH library
# does not offer; logins are also timed directly with the key exchange the
# client negotiates with the gate, to tell the gate's cost from the
# algorithm's.
gate_kex="$(awk '$1 == "client-gate" {print $2}' "$work/ciphers")"
port_of[direct_kex]="$sshd_port"; user_of[direct_kex]="$backend_user"
settle() { # until sshd has no connection left (the gate's closed too)
  for _ in $(seq 200); do [ -z "$(pgrep -P "$sshd_pid")" ] && return; sleep 0.05; done
  echo "sshd still has connections open" >&2; exit 1
}

# ---- 3. Sessions held open through the gate, measured first, on the
# fresh gate, so that memory the transfers freed does not hide what
# sessions take. They start in batches; each
# prints a line once its command runs in the workspace, then waits for the
# end of its input: a FIFO nobody writes to, so the remote command ends
# with its connection (a remote `sleep` would outlive it).
echo "# opening $sessions sessions" >&2
mkfifo "$work/sessions.in"; exec 4<>"$work/sessions.in"
settle
idle="$(rss)"
ready() { cat "$work"/session.* 2>/dev/null | grep -c '^ready$' || true; }
batch=20
for i in $(seq "$sessions"); do
  ssh "${opts[@]}" -p "$gate_port" ws-1@127.0.0.1 'echo ready; exec cat > /dev/null' \
    <&4 > "$work/session.$i" 2>> "$work/sessions.err" &
  session_pids+=($!)
  if [ $((i % batch)) = 0 ] || [ "$i" = "$sessions" ]; then
    for _ in $(seq 600); do [ "$(ready)" -ge "$i" ] && break; sleep 0.1; done
    [ "$(ready)" -ge "$i" ] || { echo "only $(ready) of $i sessions started" >&2; cat "$work/sessions.err" >&2; exit 1; }
  fi
done
open="$(metric workspace_gate_ssh_sessions_open)"
[ "${open%.*}" = "$sessions" ] || { echo "the gate counts $open sessions open, expected $sessions" >&2; exit 1; }
sleep 2
rss_open="$(rss)"
sshd_pss=0 # sshd's per-connection processes (children and grandchildren), for comparison
for p in $(pgrep -P "$sshd_pid") $(for c in $(pgrep -P "$sshd_pid"); do pgrep -P "$c"; done); do
  sshd_pss=$((sshd_pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
done
for p in "${session_pids[@]}"; do kill "$p" 2>/dev/null || true; done
for _ in $(seq 300); do [ "$(metric workspace_gate_ssh_sessions_open)" = 0 ] && break; sleep 0.1; done
session_pids=()
settle
sleep 2
rss_after="$(rss)"

# ---- 1. scp, and 2. logins, interleaved.
echo "# writing a $size_mib MiB file of random bytes" >&2
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$data/src.bin"
xfer() { # path(gate|direct) protocol(classic|sftp) direction(up|down) round
  local path="$1" proto="$2" dir="$3" flag=() src dst g0 s0 c0 c1 t0 t1 st0 st1 b0 b1
  [ "$proto" = classic ] && flag=(-O)
  rm -f "$data/dst.bin"
  if [ "$dir" = up ]; then src="$data/src.bin"; dst="${user_of[$path]}@127.0.0.1:$data/dst.bin"
  else src="${user_of[$path]}@127.0.0.1:$data/src.bin"; dst="$data/dst.bin"; fi
  g0="$(ticks "$gate_pid")"; s0="$(ticks "$sshd_pid")"; c0="$(reaped)"; st0="$(steal)"; b0="$(busy)"
  t0="$EPOCHREALTIME"
  scp -q "${opts[@]}" "${flag[@]}" -P "${port_of[$path]}" "$src" "$dst"
  t1="$EPOCHREALTIME"; c1="$(reaped)"; st1="$(steal)"; b1="$(busy)"
  settle
  echo "xfer $4 $path $proto $dir $t0 $t1 $(($(ticks "$gate_pid") - g0)) $(($(ticks "$sshd_pid") - s0)) $((c1 - c0)) $((st1 - st0)) $((b1 - b0))" >> "$work/results"
  cmp -s "$data/src.bin" "$data/dst.bin" || { echo "$path $proto $dir: the copy differs" >&2; exit 1; }
}
login() { # path round
  local t0 t1 kex=()
  [ "$1" = direct_kex ] && kex=(-o "KexAlgorithms=$gate_kex")
  t0="$EPOCHREALTIME"
  ssh "${opts[@]}" "${kex[@]}" -p "${port_of[$1]}" "${user_of[$1]}@127.0.0.1" true
  t1="$EPOCHREALTIME"
  echo "login $2 $1 $t0 $t1" >> "$work/results"
}
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="gate direct"; else order="direct gate"; fi
  echo "# round $r of $rounds: transfers" >&2
  for proto in classic sftp; do
    for dir in up down; do
      for path in $order; do xfer "$path" "$proto" "$dir" "$r"; done
    done
  done
  echo "# round $r of $rounds: logins" >&2
  g0="$(ticks "$gate_pid")"
  for i in $(seq "$logins"); do
    case $((i % 3)) in
      1) login gate "$r"; login direct "$r"; login direct_kex "$r" ;;
      2) login direct "$r"; login direct_kex "$r"; login gate "$r" ;;
      0) login direct_kex "$r"; login gate "$r"; login direct "$r" ;;
    esac
  done
  echo "login-cpu $r $(($(ticks "$gate_pid") - g0)) $logins" >> "$work/results"
done
rm -f "$data/dst.bin" "$data/src.bin"
echo "memory $idle $rss_open $rss_after $sessions $sshd_pss $(rss) $(awk '/^VmHWM/ {print $2}' "/proc/$gate_pid/status")" >> "$work/results"

if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
  head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$data/src.bin"
  perf record -q -o "$work/perf.data" -p "$gate_pid" 2> /dev/null &
  perf_pid=$!
  sleep 0.5
  scp -q "${opts[@]}" -P "$gate_port" "$data/src.bin" "ws-1@127.0.0.1:$data/dst.bin"
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  perf report -q -i "$work/perf.data" --no-children --sort dso,symbol --percent-limit 1.5 2> /dev/null \
    | grep -v '^$' | grep -v '^ *[|-]' | sed 's/[ -]*$//' | head -25 > "$work/perf.txt" || true
fi

python3 - "$work/results" "$work/ciphers" "$size_mib" "$hz" "$rounds" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
results, ciphers, size, hz, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"Load average (1, 5, 15 min): {sys.argv[6]} at the start, {sys.argv[7]} at the end")
xfer, login, login_cpu, mem = {}, {}, [], None
for line in open(results):
    f = line.split()
    if f[0] == "xfer":
        r, path, proto, d = f[1:5]
        wall = float(f[6]) - float(f[5])
        g, s, c = (int(x) * 1000 / hz / size for x in f[7:10])  # ms of CPU per MiB
        busy = (g + s + c) * size / 1000 / wall                  # cores busy: gate, sshd and client
        stolen = int(f[10]) / hz / wall                          # CPUs' worth stolen by the hypervisor
        others = max(int(f[11]) / hz / wall - busy, 0)           # cores busy with anything else
        xfer.setdefault((proto, d, path), []).append((int(r), size / wall, g, s, c, busy, stolen, others))
    elif f[0] == "login":
        login.setdefault(f[2], {}).setdefault(int(f[1]), []).append((float(f[4]) - float(f[3])) * 1000)
    elif f[0] == "login-cpu":
        login_cpu.append(int(f[2]) * 1000 / hz / int(f[3]))
    elif f[0] == "memory":
        mem = [int(x) for x in f[1:]]
med = statistics.median
spread = lambda v, fmt="{:.0f}": f"{fmt.format(min(v))}–{fmt.format(max(v))}"
print("Negotiated (key exchange, cipher):")
for line in open(ciphers):
    hop, kex, cipher = (line.split() + ["?", "?"])[:3]
    print(f"- {hop}: {kex}, {cipher}")
print()
print(f"scp of {size} MiB, medians of {rounds} interleaved rounds (min–max):")
print()
print("| protocol | direction | direct MiB/s | gate MiB/s | gate/direct | per round | gate CPU ms/MiB | sshd CPU ms/MiB, direct / via gate | client CPU ms/MiB, direct / via gate | cores busy, direct / via gate | other processes, cores (max) | stolen, cores (max) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for proto in ("classic", "sftp"):
    for d in ("up", "down"):
        dr, gr = xfer[(proto, d, "direct")], xfer[(proto, d, "gate")]
        ratios = [g[1] / x[1] for g, x in zip(gr, dr)]
        col = lambda runs, i: [x[i] for x in runs]
        name = "scp -O (classic)" if proto == "classic" else "scp (SFTP)"
        print(f"| {name} | {'upload' if d == 'up' else 'download'} "
              f"| {med(col(dr, 1)):.0f} ({spread(col(dr, 1))}) | {med(col(gr, 1)):.0f} ({spread(col(gr, 1))}) "
              f"| {med(ratios):.2f} | {', '.join(f'{x:.2f}' for x in ratios)} "
              f"| {med(col(gr, 2)):.2f} ({spread(col(gr, 2), '{:.2f}')}) "
              f"| {med(col(dr, 3)):.2f} / {med(col(gr, 3)):.2f} | {med(col(dr, 4)):.2f} / {med(col(gr, 4)):.2f} "
              f"| {med(col(dr, 5)):.2f} / {med(col(gr, 5)):.2f} | {max(col(dr + gr, 7)):.2f} "
              f"| {max(col(dr + gr, 6)):.2f} |")
print()
every = {p: [t for ts in login[p].values() for t in ts] for p in login}
added = lambda base: [med(login["gate"][r]) - med(login[base][r]) for r in sorted(login["gate"])]
gate_kex = next((l.split()[1] for l in open(ciphers) if l.startswith("client-gate ")), "?")
n = len(every["direct"])
print(f"`ssh <host> true`, {n} runs each ({n // len(login['gate'])} per round), wall time in ms:")
print()
print("| path | median | min–max | gate minus this (median; per round) |")
print("|---|---|---|---|")
for p, name in (("direct", "direct (OpenSSH's default key exchange)"), ("direct_kex", f"direct, {gate_kex} (as the client negotiates with the gate)"), ("gate", "gate")):
    v = every[p]
    diff = "" if p == "gate" else f"{med(every['gate']) - med(v):+.1f}; {', '.join(f'{x:+.1f}' for x in added(p))}"
    print(f"| {name} | {med(v):.1f} | {spread(v, '{:.1f}')} | {diff} |")
print()
print(f"- gate CPU per login: {med(login_cpu):.1f} ms (per round {', '.join(f'{x:.1f}' for x in login_cpu)})")
idle, rss_open, rss_after, n, sshd_pss, end, peak = mem
print(f"Gate memory (VmRSS): idle {idle / 1024:.1f} MiB, with {n} sessions open {rss_open / 1024:.1f} MiB, "
      f"after they closed {rss_after / 1024:.1f} MiB, after the transfers and logins {end / 1024:.1f} MiB (peak {peak / 1024:.1f} MiB)")
print(f"- per session: {(rss_open - idle) / n:.0f} KiB "
      f"(sshd's per-connection processes, for comparison: {sshd_pss / n:.0f} KiB Pss per session)")
PY
if [ -s "$work/perf.txt" ] 2>/dev/null; then
  echo
  echo "The gate's hottest symbols during one upload (perf, self time):"
  cat "$work/perf.txt"
fi
