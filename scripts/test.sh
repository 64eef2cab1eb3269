#!/usr/bin/env bash
# Runs every test of workspace-gate: installs what the tests need when it is
# missing (apt, the project venv, npm), checks formatting and lints, runs
# the Rust unit, integration and end-to-end tests (real nginx, Traefik,
# Envoy, OpenID provider and Chromium) and the Helm chart tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo build"
cargo build --bins
echo "== cargo test"
cargo test --no-fail-fast --all-targets -- --test-threads="${WORKSPACE_GATE_TEST_THREADS:-2}"
if [ -d tests/chart ]; then
  echo "== chart tests"
  WORKSPACE_GATE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/workspace-gate" \
    "$root/.venv/bin/python" -m pytest tests/chart -q
fi
