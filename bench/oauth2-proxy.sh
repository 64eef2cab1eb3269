#!/usr/bin/env bash
# oauth2-proxy, the peer that bench/versus.sh measures the gate against.
# It is a benchmark peer only: not a test dependency, not shipped. Built
# with Go from its module at the version pinned below, once, into a cache
# folder of the benchmark's own (outside the work tree, keyed by version,
# so later runs and CI on the same machine reuse it).
#   bench/oauth2-proxy.sh            prints the binary's path (builds it once)
#   source bench/oauth2-proxy.sh     then: oauth2_proxy_bin
OAUTH2_PROXY_MODULE=github.com/oauth2-proxy/oauth2-proxy/v7
OAUTH2_PROXY_VERSION=v7.15.6

oauth2_proxy_bin() {
  local dir="${WORKSPACE_GATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workspace-gate}/oauth2-proxy/$OAUTH2_PROXY_VERSION"
  if [ ! -x "$dir/oauth2-proxy" ]; then
    command -v go >/dev/null || { echo "go is missing (Go 1.25 or later builds oauth2-proxy)" >&2; return 1; }
    mkdir -p "$dir"
    local tmp
    tmp="$(mktemp -d "$dir/build.XXXXXX")"
    echo "building oauth2-proxy $OAUTH2_PROXY_VERSION into $dir" >&2
    # As its own release build does: no cgo, the version stamped in.
    if ! GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" go install \
      -ldflags="-X $OAUTH2_PROXY_MODULE/pkg/version.VERSION=$OAUTH2_PROXY_VERSION" \
      "$OAUTH2_PROXY_MODULE@$OAUTH2_PROXY_VERSION" >&2; then
      rm -rf "$tmp"
      return 1
    fi
    mv "$tmp/oauth2-proxy" "$dir/oauth2-proxy"
    rm -rf "$tmp"
  fi
  echo "$dir/oauth2-proxy"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  oauth2_proxy_bin
fi
