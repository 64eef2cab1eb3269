//go:build tools

// The test rig's module for Envoy Gateway: test support only, nothing here
// is part of workspace-gate. scripts/build-envoy-gateway.sh builds
// cmd/envoy-gateway from it at the version go.mod requires.
package tools

import _ "github.com/envoyproxy/gateway/cmd/envoy-gateway"
