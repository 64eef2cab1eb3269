#!/usr/bin/env bash
# Builds the real Kubernetes control plane the discovery tests run against
# (kube-apiserver, kube-controller-manager, etcd) from the Go module proxy at
# the versions in tests/support/controlplane/versions.env, and fetches the
# released CRD files of Gateway API, Envoy Gateway, Traefik and the Prometheus
# Operator's ServiceMonitor. Everything lands in a cache keyed by the rig's
# go.mod, go.sum, versions file, link flags and Go release, so a second run
# builds nothing. Prints the cache directory on stdout.
#
# Test support only: workspace-gate itself is one Rust binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rig="$root/tests/support/controlplane"
# shellcheck source=../tests/support/controlplane/versions.env
. "$rig/versions.env"

if ! command -v go >/dev/null 2>&1; then
  echo "build-control-plane: the Go toolchain (1.26 or newer) is needed to build kube-apiserver and etcd for the tests; install Go and run again" >&2
  exit 1
fi
for pin in "k8s.io/kubernetes $KUBERNETES" "go.etcd.io/etcd/server/v3 $ETCD"; do
  if ! grep -q "^	$pin\$" "$rig/go.mod"; then
    echo "build-control-plane: $rig/go.mod does not require '$pin' as versions.env says" >&2
    exit 1
  fi
done

# Stamp the release into the binaries as Kubernetes' own build does: a
# module build otherwise reports v0.0.0-master to /version, which Helm
# compares with a chart's kubeVersion (and refuses to install).
release="${KUBERNETES#v}" # 1.37.2
minor="${release#*.}"
v=k8s.io/component-base/version
ldflags="-X $v.gitVersion=$KUBERNETES -X $v.gitMajor=${release%%.*} -X $v.gitMinor=${minor%%.*} -X $v.gitTreeState=clean"
key="$( (cat "$rig/go.mod" "$rig/go.sum" "$rig/versions.env"; echo "$ldflags") | sha256sum | cut -c1-16)-$(go env GOVERSION)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/workspace-gate/controlplane/$key"
if [ -f "$cache/.complete" ]; then
  echo "$cache"
  exit 0
fi
mkdir -p "$cache/bin" "$cache/crds"

echo "build-control-plane: building kube-apiserver, kube-controller-manager ($KUBERNETES) and etcd ($ETCD) into $cache (first run: several minutes)" >&2
(
  cd "$rig"
  export CGO_ENABLED=0 GOFLAGS=-mod=readonly
  go build -trimpath -ldflags "$ldflags" -o "$cache/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags "$ldflags" -o "$cache/bin/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
  go build -trimpath -o "$cache/bin/etcd" go.etcd.io/etcd/server/v3
)

module_dir() {
  # The unpacked module of a released version, from the Go module proxy.
  (cd "$rig" && GOFLAGS=-mod=mod go mod download -json "$1@$2") |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
gw="$(module_dir sigs.k8s.io/gateway-api "$GATEWAY_API")"
eg="$(module_dir github.com/envoyproxy/gateway "$ENVOY_GATEWAY")"
tr="$(module_dir github.com/traefik/traefik/v3 "$TRAEFIK")"
po="$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR")"
servicemonitor_crd="$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
traefik_crds="$tr/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"
if [ ! -f "$traefik_crds" ]; then
  echo "build-control-plane: expected Traefik's CRDs in $traefik_crds" >&2
  exit 1
fi
if [ ! -f "$servicemonitor_crd" ]; then
  echo "build-control-plane: expected the Prometheus Operator's ServiceMonitor CRD in $servicemonitor_crd" >&2
  exit 1
fi
for dir in "$gw/config/crd/experimental" "$eg/charts/gateway-crds-helm/templates/generated"; do
  if [ ! -d "$dir" ]; then
    echo "build-control-plane: expected the released CRDs in $dir" >&2
    exit 1
  fi
done
rm -f "$cache/crds/"*.yaml
cp "$gw"/config/crd/experimental/gateway.*.yaml "$cache/crds/"
cp "$traefik_crds" "$cache/crds/traefik.io.yaml"
cp "$servicemonitor_crd" "$cache/crds/"
# Envoy Gateway ships its CRDs inside its CRD chart; the files are plain
# CRDs wrapped in one `{{- if ... }}` / `{{- end }}` pair.
for f in "$eg"/charts/gateway-crds-helm/templates/generated/*.yaml; do
  grep -v '^{{' "$f" > "$cache/crds/$(basename "$f")"
done
chmod u+w "$cache/crds/"*.yaml
touch "$cache/.complete"
echo "$cache"
