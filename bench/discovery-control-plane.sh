#!/usr/bin/env bash
# Discovery at scale against the real API server: builds the gate and
# benches/discovery_control_plane.rs (release), starts etcd, kube-apiserver
# and kube-controller-manager on loopback (scripts/build-control-plane.sh
# builds them once; scripts/install-deps.sh), creates the workspace
# Services, runs `workspace-gate serve` as its own process and prints the
# table (markdown) on stdout; progress goes to stderr.
# Usage: bench/discovery-control-plane.sh [services] [changes]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
services="${1:-10000}"
changes="${2:-20}"
cd "$root"
# Nothing but loopback: no proxy for the API server or the gate.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cargo bench --bench discovery_control_plane -- --services "$services" --changes "$changes"
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
