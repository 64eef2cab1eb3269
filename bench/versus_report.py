#!/usr/bin/env python3
"""The tables of bench/versus.sh from its raw lines (see that script)."""

import json
import statistics
import sys

results, memory, logins, rounds, auth_cpu, n_logins = sys.argv[1:7]


def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    raise ValueError(v)


runs = {}
for line in open(results):
    name, rps, p50, p99, bad, total, auth_t, ctl_t, rss = line.split()
    if int(bad):
        sys.exit(f"{name}: {bad} non-2xx answers; the run is invalid")
    total = max(int(total), 1)
    runs.setdefault(name, []).append(
        {
            "rps": float(rps),
            "p50": ms(p50),
            "p99": ms(p99),
            "auth": int(auth_t) * 10_000 / total,
            "ctl": int(ctl_t) * 10_000 / total,
            "rss": int(rss) / 1024,
        }
    )
med = {n: {k: statistics.median(r[k] for r in v) for k in v[0]} for n, v in runs.items()}


def baseline(name):
    ctl = name.split("_")[0]
    if name.startswith("nginx_fresh"):
        return "nginx_none"
    return f"{ctl}_none" if f"{ctl}_none" in med and ctl != "direct" else None


print(f"Medians of {rounds} interleaved rounds; the auth services on CPU {auth_cpu}, "
      "the controller and the workspace on CPU 1, wrk on CPU 0.")
print()
print("| row | requests/s (min–max) | p50 / p99 (ms) | added p50 / p99 (ms) "
      "| auth service CPU per request (µs) | controller CPU per request (µs) | auth service RSS under load (MiB) |")
print("|---|---|---|---|---|---|---|")
for n, m in med.items():
    lo = min(r["rps"] for r in runs[n])
    hi = max(r["rps"] for r in runs[n])
    b = baseline(n)
    added = f"{m['p50'] - med[b]['p50']:.2f} / {m['p99'] - med[b]['p99']:.2f}" if b and b != n else "-"
    rss = f"{m['rss']:.1f}" if m["rss"] else "-"
    ctl = f"{m['ctl']:.0f}" if not n.startswith("direct") else "-"
    print(f"| {n} | {m['rps']:.0f} ({lo:.0f}–{hi:.0f}) | {m['p50']:.2f} / {m['p99']:.2f} | {added} "
          f"| {m['auth']:.1f} | {ctl} | {rss} |")
print()

pairs = [
    ("wrk at the check itself", "direct_gate", "direct_o2p"),
    ("nginx, kept connections", "nginx_gate", "nginx_o2p"),
    ("nginx, a connection per check", "nginx_fresh_gate", "nginx_fresh_o2p"),
    ("Envoy, gate gRPC / oauth2-proxy HTTP", "envoy_gate_grpc", "envoy_o2p_http"),
    ("Envoy, both HTTP mode", "envoy_gate_http", "envoy_o2p_http"),
    ("Traefik forwardAuth, http", "traefik_gate", "traefik_o2p"),
    ("Traefik forwardAuth, https", "traefik_gate_https", "traefik_o2p_https"),
]


def ratio(g, o, key):
    per = [a[key] / b[key] for a, b in zip(runs[g], runs[o]) if b[key]]
    return statistics.median(per), min(per), max(per)


def cell(r, goal, better_low):
    met = r[0] <= goal if better_low else r[0] >= goal
    return f"{r[0]:.2f} ({r[1]:.2f}–{r[2]:.2f}) {'met' if met else 'MISSED'}"


print("Gate / oauth2-proxy, per round (median, min–max over rounds):")
print()
print("| through | throughput (goal >= 1.5) | auth CPU per check (goal <= 0.33) "
      "| auth RSS under load (goal <= 0.25) | controller CPU per request |")
print("|---|---|---|---|---|")
for label, g, o in pairs:
    if g not in runs or o not in runs:
        continue
    ctl = "-" if g.startswith("direct") else "{:.2f} ({:.2f}–{:.2f})".format(*ratio(g, o, "ctl"))
    print(f"| {label} | {cell(ratio(g, o, 'rps'), 1.5, False)} | {cell(ratio(g, o, 'auth'), 1 / 3, True)} "
          f"| {cell(ratio(g, o, 'rss'), 0.25, True)} | {ctl} |")
print()

mem = {}
for line in open(memory):
    _, who, idle, hwm = line.split()
    mem[who] = (int(idle) / 1024, int(hwm) / 1024)
print("| auth service | RSS idle (MiB) | RSS peak, VmHWM (MiB) |")
print("|---|---|---|")
for who, label in (("gate", "workspace-gate"), ("o2p", "oauth2-proxy")):
    print(f"| {label} | {mem[who][0]:.1f} | {mem[who][1]:.1f} |")
print()

print(f"The login behind nginx ({n_logins} logins each, a fresh cookie jar each):")
print()
print("| auth service | redirects | form posts | time, median (ms) | auth service CPU (ms/login) "
      "| nginx CPU (ms/login) | provider CPU (ms/login) |")
print("|---|---|---|---|---|---|---|")
for line in open(logins):
    parts = line.split(" ", 8)
    who, a1, a0, n1, n0, p1, p0 = parts[1], *map(int, parts[2:8])
    d = json.loads(parts[8])
    per = lambda x, y: (x - y) * 10 / int(n_logins)
    label = "workspace-gate" if who == "gate" else "oauth2-proxy"
    print(f"| {label} | {d['redirects']} | {d['posts']} | {d['ms_median']:.1f} | {per(a1, a0):.2f} "
          f"| {per(n1, n0):.2f} | {per(p1, p0):.2f} |")
