# Envoy bootstrap pieces shared by bench/controllers.sh and
# bench/envoy_instructions.sh (sourced, not run): listeners that differ only
# in their auth filter, and the clusters of the workspace and the gate.

# envoy_listener NAME PORT FILTER-YAML
envoy_listener() {
  cat <<L
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          route_config:
            virtual_hosts:
            - name: ws
              domains: ["*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: upstream, prefix_rewrite: "/trivial" } }]
          http_filters:
$3
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
L
}

# envoy_ext_authz SERVICE-YAML [EXTRA-YAML]: Envoy's ext_authz filter with
# the given service and allowed_headers as in the examples/envoy bootstraps.
envoy_ext_authz() {
  cat <<F
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              allowed_headers: { patterns: [{ exact: cookie }, { exact: authorization }, { exact: accept }, { exact: upgrade }, { exact: sec-fetch-mode }, { exact: x-request-id }] }
$1
F
  if [ -n "${2:-}" ]; then printf '              %s\n' "$2"; fi
}

# envoy_gate_filter [EXTRA-YAML] [ENVOY-GRPC-FIELDS]: ext_authz over gRPC to
# the cluster gate_grpc; the fields (e.g. ", skip_envoy_headers: true") go
# into its envoy_grpc.
envoy_gate_filter() {
  envoy_ext_authz "              grpc_service: { envoy_grpc: { cluster_name: gate_grpc${2:-} }, timeout: 1s }" "${1:-}"
}

# envoy_http_filter CLUSTER PATH-PREFIX HEADER...: ext_authz in HTTP mode to
# CLUSTER (a path prefix of "" sends the request's own path), the named
# answer headers copied into the upstream request.
envoy_http_filter() {
  local cluster="$1" prefix="$2" h patterns=""
  shift 2
  for h in "$@"; do patterns="$patterns${patterns:+, }{ exact: $h }"; done
  envoy_ext_authz "              http_service:
                server_uri: { uri: \"http://$cluster\", cluster: $cluster, timeout: 1s }${prefix:+
                path_prefix: $prefix}
                authorization_response: { allowed_upstream_headers: { patterns: [$patterns] } }"
}

# envoy_gate_http_filter: ext_authz in HTTP mode to the cluster gate_http.
envoy_gate_http_filter() {
  envoy_http_filter gate_http /check/envoy x-workspace-user x-workspace-user-id x-workspace-id cookie authorization
}

# envoy_jwt_filter HOST JWKS: Envoy's own jwt_authn verifying the pass
# cookie (HS256, the pass subkey as a JWKS).
envoy_jwt_filter() {
  local jwks
  jwks="$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$2")"
  cat <<F
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                pass:
                  from_cookies: ["__Host-workspace-gate-pass"]
                  audiences: ["$1"]
                  local_jwks: { inline_string: $jwks }
              rules: [{ match: { prefix: "/" }, requires: { provider_name: pass } }]
F
}

# envoy_cluster NAME PORT h1|h2
envoy_cluster() {
  cat <<C
  - name: $1
    type: STATIC
    connect_timeout: 1s
C
  if [ "$3" = h2 ]; then
    cat <<C
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
C
  fi
  cat <<C
    load_assignment:
      cluster_name: $1
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } }] }]
C
}
