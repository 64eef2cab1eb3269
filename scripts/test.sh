#!/usr/bin/env bash
# Runs every test of workspace-gate: installs what the tests need when it is
# missing (apt, the project venv, npm), checks formatting and lints, runs
# the Rust unit, integration and end-to-end tests (real nginx, Traefik,
# Envoy, OpenID provider and Chromium) and the Helm chart tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/install-deps.sh

# A full run rebuilds the crate anyway; incremental state only costs disk
# (several GB over every test binary). Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo build"
cargo build --bins
status=0
echo "== cargo test"
# Benches are compiled by clippy above and run by bench/*.sh, not here.
cargo test --no-fail-fast --lib --bins --tests -- \
  --test-threads="${WORKSPACE_GATE_TEST_THREADS:-2}" || status=1
echo "== chart tests"
WORKSPACE_GATE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/workspace-gate" \
  "$root/.venv/bin/python" -m pytest tests/chart -q || status=1
if [ "$status" -ne 0 ]; then
  echo "== some tests failed (see above)" >&2
fi
exit "$status"
