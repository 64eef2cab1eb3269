#!/usr/bin/env bash
# Builds Envoy Gateway's controller (cmd/envoy-gateway) from the Go module
# proxy at the release tests/support/controlplane/versions.env names, for the
# gateway-api tests: it reads the HTTPRoutes, SecurityPolicies and
# ReferenceGrants discovery writes into the test control plane and serves
# their translation to a real Envoy over xDS. The result is cached, keyed by
# the rig's go.mod, go.sum, link flags and Go release, so a second run builds
# nothing. Prints the cache directory on stdout.
#
# So that nothing binds beyond loopback, three of the controller's listeners
# change: its xDS server listens on 127.0.0.1:18000 instead of every
# address (a constant of the release, so the build compiles a copy of the
# released module with that one line changed, checked below), and
# controller-runtime's metrics and health probe listeners are off (package
# variables, set at link time; the tests read neither). Nothing else of the
# release is changed.
#
# Test support only: workspace-gate itself is one Rust binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rig="$root/tests/support/envoygateway"
# shellcheck source=../tests/support/controlplane/versions.env
. "$root/tests/support/controlplane/versions.env"

if ! command -v go >/dev/null 2>&1; then
  echo "build-envoy-gateway: the Go toolchain (1.26 or newer) is needed to build Envoy Gateway for the tests; install Go and run again" >&2
  exit 1
fi
if ! grep -q "^require github.com/envoyproxy/gateway $ENVOY_GATEWAY\$" "$rig/go.mod"; then
  echo "build-envoy-gateway: $rig/go.mod does not require github.com/envoyproxy/gateway $ENVOY_GATEWAY as versions.env says" >&2
  exit 1
fi

eg=github.com/envoyproxy/gateway
ldflags="-s -w -X $eg/internal/provider/kubernetes.healthProbeBindAddress=0"
ldflags="$ldflags -X sigs.k8s.io/controller-runtime/pkg/metrics/server.DefaultBindAddress=0"
ldflags="$ldflags -X $eg/internal/cmd/version.envoyGatewayVersion=$ENVOY_GATEWAY"
xds_line='XdsServerAddress = "0.0.0.0"'
key="$( (cat "$rig/go.mod" "$rig/go.sum" "$0"; echo "$ldflags") | sha256sum | cut -c1-16)-$(go env GOVERSION)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/workspace-gate/envoy-gateway/$key"
if [ -f "$cache/.complete" ]; then
  echo "$cache"
  exit 0
fi
mkdir -p "$cache/bin"
echo "build-envoy-gateway: building Envoy Gateway $ENVOY_GATEWAY into $cache (first run: a few minutes)" >&2
released="$(cd "$rig" && GOFLAGS=-mod=mod go mod download -json "$eg@$ENVOY_GATEWAY" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
runner="internal/xds/runner/runner.go"
if [ -z "$released" ] || [ "$(grep -c "^	$xds_line\$" "$released/$runner")" != 1 ]; then
  echo "build-envoy-gateway: expected one line '$xds_line' in $released/$runner" >&2
  exit 1
fi
rm -rf "$cache/src"
cp -r "$released" "$cache/src"
chmod -R u+w "$cache/src"
sed -i "s/^	$xds_line\$/	XdsServerAddress = \"127.0.0.1\"/" "$cache/src/$runner"
# The rig's go.mod and go.sum, with the release replaced by that copy.
cp "$rig/go.mod" "$rig/go.sum" "$rig/tools.go" "$cache/"
echo "replace $eg => $cache/src" >> "$cache/go.mod"
(
  cd "$cache"
  export CGO_ENABLED=0 GOFLAGS=-mod=readonly
  go build -modfile "$cache/go.mod" -trimpath -ldflags "$ldflags" -o "$cache/bin/envoy-gateway" "$eg/cmd/envoy-gateway"
)
touch "$cache/.complete"
echo "$cache"
