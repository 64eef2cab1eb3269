//! Every configuration key, its default and its meaning. The README's
//! configuration reference is this table (`scripts/config-table.py` and
//! `tests/docs.rs` keep them equal), and the reader refuses any key that is
//! not in it.

/// Every configuration key, its default and its meaning. The README's
/// configuration reference is this table.
pub const KEYS: &[KeyDoc] = &[
    k(
        "auth_host",
        "",
        "Host of the login pages (`/auth/*`); the identity provider's redirect URI is `<public_scheme>://<auth_host>/auth/callback`.",
    ),
    k(
        "workspace_domain",
        "",
        "Workspaces live on `<label>.<workspace_domain>`; `rd` targets must be such a host.",
    ),
    k(
        "public_scheme",
        "https",
        "`https`, or `http` only when every listener is on loopback (local try-out).",
    ),
    k(
        "public_port",
        "",
        "Port browsers use on the ingress controller when it is not 443 (or 80 for http); empty for the default. `rd` targets and redirects carry it.",
    ),
    k(
        "listen.http",
        "0.0.0.0:8080",
        "Login pages, the reserved `/.workspace-gate/` paths and the `/check/*` endpoints.",
    ),
    k(
        "listen.admin",
        "0.0.0.0:9090",
        "`/healthz`, `/readyz`, `/metrics`.",
    ),
    k(
        "listen.grpc",
        "",
        "Envoy ext_authz gRPC (`envoy.service.auth.v3.Authorization`); empty disables it.",
    ),
    k(
        "listen.https",
        "",
        "HTTPS listener serving the same routes as `listen.http` (HTTP/2 and HTTP/1.1), e.g. for Traefik's forwardAuth, which then keeps one multiplexed connection instead of opening one per check; empty disables it. Needs `tls.cert_file` and `tls.key_file`.",
    ),
    k(
        "listen.https_max_connection_age",
        "2m",
        "How long a `listen.https` connection lives (±10 %) before the gate asks the client to reconnect (HTTP/2 GOAWAY; requests in flight finish). A controller keeps one HTTP/2 connection for all its checks; reconnecting lets the Service spread them over the gate's replicas after a scale-out.",
    ),
    k(
        "listen.header_read_timeout",
        "10s",
        "Every listener: time a client has to send a complete request header, from the connection's start (after the TLS handshake of `listen.https`, which gets the same time) or, on a kept HTTP/1.1 connection, from the first byte of its next request. Slower connections are closed.",
    ),
    k(
        "listen.idle_timeout",
        "2m",
        "Every listener: a connection with no request in flight is closed after this long (HTTP/2 with GOAWAY). Longer than the keep-alive timeouts of ingress-nginx (60s) and Traefik (90s), so they close idle connections first; see [Connections and shutdown](#connections-and-shutdown).",
    ),
    k(
        "listen.shutdown_grace",
        "10s",
        "After SIGTERM the gate stops accepting connections, lets requests in flight finish for at most this long, then closes every connection and exits. The pod's `terminationGracePeriodSeconds` must exceed it plus any preStop delay.",
    ),
    k(
        "listen.ssh",
        "",
        "SSH gateway to the workspaces' own sshd (`ssh <workspace>@<gate>`); empty disables it. The one listener where the gate carries traffic itself. Needs `ssh.host_key_files`.",
    ),
    k(
        "tls.cert_file",
        "",
        "PEM certificate chain of `listen.https` (leaf first). Re-read within 10s when it changes (e.g. renewed by cert-manager); a broken renewal keeps the previous certificate and is logged.",
    ),
    k(
        "tls.key_file",
        "",
        "PEM private key (PKCS#8, PKCS#1 or SEC1) matching `tls.cert_file`.",
    ),
    k(
        "oidc.issuer",
        "",
        "OpenID provider issuer URL (e.g. `https://gitlab.example.com`); discovery reads `<issuer>/.well-known/openid-configuration`.",
    ),
    k(
        "oidc.client_id",
        "",
        "OAuth client id registered at the provider.",
    ),
    k(
        "oidc.client_secret_file",
        "",
        "File holding the OAuth client secret.",
    ),
    k(
        "oidc.scopes",
        "openid,profile,read_api",
        "Scopes requested (comma-separated in the environment). `read_api` lets the `gitlab` authorizer call GraphQL.",
    ),
    k(
        "oidc.username_claim",
        "preferred_username",
        "ID-token or userinfo claim used as the username (`X-Workspace-User`).",
    ),
    k(
        "keys.files",
        "",
        "Files holding signing keys (`workspace-gate keygen`); the first signs, all verify. Comma-separated in the environment.",
    ),
    k(
        "session.pass_ttl",
        "12h",
        "Lifetime of a workspace host's pass cookie.",
    ),
    k(
        "session.login_ttl",
        "7d",
        "Lifetime of the login cookie on the auth host.",
    ),
    k(
        "session.transfer_ttl",
        "60s",
        "Lifetime of a transfer token (at most 60s).",
    ),
    k(
        "session.transfer",
        "fragment",
        "How the auth host hands a transfer token to a workspace host: `fragment` (in the callback URL's fragment, which no server receives; a page on the workspace host moves it to a short-lived cookie; every controller), `form_post` (in a POST body; only where the gate serves `/.workspace-gate/` itself, as behind ingress-nginx) or `query` (in the callback URL: every access log records it). Whichever way, redeeming it needs the bind cookie of the browser that started the login.",
    ),
    k(
        "workspaces.source",
        "file",
        "`file` (a YAML list, reloaded on change) or `kubernetes` (discovery).",
    ),
    k(
        "workspaces.file",
        "",
        "Path of the workspaces file when `workspaces.source` is `file`.",
    ),
    k(
        "authorization.mode",
        "gitlab",
        "`gitlab` (GraphQL: the workspace's user must be the current user) or `owner-annotation` (owner from the workspace's annotation or file entry).",
    ),
    k(
        "authorization.gitlab_url",
        "",
        "GitLab base URL for GraphQL (`<gitlab_url>/api/graphql`) and for the workspace list the workspace-not-found page links; defaults to `oidc.issuer`.",
    ),
    k(
        "authorization.cache_ttl",
        "60s",
        "How long an authorization decision is cached (at most 60s for bearer tokens).",
    ),
    k("log.format", "json", "`json` or `text`."),
    k(
        "log.level",
        "info",
        "tracing filter, e.g. `info,workspace_gate=debug`.",
    ),
    // The SSH gateway (`config::ssh`), used with `listen.ssh`.
    k(
        "ssh.host_key_files",
        "",
        "Private host key files of the SSH gateway (OpenSSH format, or PKCS#8 / PKCS#1 PEM, no passphrase); all are offered, so a new key can be added before the old one goes. `workspace-gate keygen --ssh` prints a new ed25519 key.",
    ),
    k(
        "ssh.backend_user",
        "gitlab-workspaces",
        "User the gate logs in as on the workspace's sshd.",
    ),
    k(
        "ssh.backend_key_file",
        "",
        "Private key the gate offers the workspace's sshd; empty: the gate tries the `none` method and an empty password, as GitLab's workspace image expects.",
    ),
    k(
        "ssh.backend_known_hosts_file",
        "",
        "Host keys (known_hosts lines; host patterns are ignored) accepted for every workspace's sshd; empty: each workspace's host key is pinned on first use, per workspace and replica, until the workspace's Service is replaced.",
    ),
    k(
        "ssh.idle_timeout",
        "1h",
        "An SSH connection with no data in either direction for this long is closed.",
    ),
    k(
        "ssh.max_session",
        "12h",
        "An SSH connection is closed this long after login, however busy.",
    ),
    k(
        "ssh.recheck_interval",
        "30s",
        "How often an open SSH connection is authorized again (the workspace still exists with the same owner, the key is still the owner's, the token still valid); also rechecked at once when the workspace changes in the index.",
    ),
    k(
        "ssh.key_cache_ttl",
        "60s",
        "How long a workspace owner's SSH keys fetched from GitLab (`/api/v4/users/:id/keys`) are kept; a removed key stops working after at most this plus `ssh.recheck_interval`.",
    ),
    k(
        "ssh.allow_agent_forwarding",
        "true",
        "Forward the user's SSH agent into the workspace when the client asks (`ssh -A`).",
    ),
    k(
        "ssh.allow_remote_forwarding",
        "false",
        "Allow remote port forwarding (`ssh -R`): ports opened inside the workspace that reach the user's machine.",
    ),
    // Discovery and routing (`config::discovery`).
    k(
        "discovery.namespaces",
        "",
        "Namespaces whose workspace Services are watched (comma-separated in the environment); empty watches all namespaces.",
    ),
    k(
        "discovery.namespace_selector",
        "",
        "Label selector on Namespaces (`k=v`, `k!=v`, `k`, `!k`, comma-separated); an alternative to `discovery.namespaces`.",
    ),
    k(
        "discovery.owner_id_annotation",
        "workspace-gate.dev/owner-id",
        "Service annotation holding the workspace owner's user id (OIDC `sub` or GitLab user id), for the `owner-annotation` authorizer.",
    ),
    k(
        "discovery.owner_username_annotation",
        "workspace-gate.dev/owner-username",
        "Service annotation holding the owner's username (optional).",
    ),
    k(
        "discovery.lease_name",
        "workspace-gate",
        "Name of the `coordination.k8s.io` Lease used to elect the one replica that writes routing objects.",
    ),
    k(
        "discovery.lease_namespace",
        "",
        "Namespace of the Lease; empty uses `POD_NAMESPACE`, else `default`.",
    ),
    k(
        "discovery.lease_duration",
        "15s",
        "How long a leader's Lease stays valid without renewal; a new leader takes over within this time.",
    ),
    k(
        "discovery.identity",
        "",
        "This replica's name in the Lease; empty uses `POD_NAME`, else the host name.",
    ),
    k(
        "discovery.resync_interval",
        "5m",
        "How often the leader compares every managed object with what it wants, putting back hand edits and deleting orphans.",
    ),
    k(
        "discovery.network_policy.enabled",
        "true",
        "Write, next to each workspace, a NetworkPolicy admitting the ingress controller's pods to the workspace's target ports (GitLab's workspace policy admits only GitLab's proxy). `false` writes none and deletes those written before.",
    ),
    k(
        "discovery.network_policy.controller_namespace",
        "",
        "Namespace of the controller's pods; empty: `ingress-nginx` (`ingress-nginx` mode), `traefik` (`traefik`), `envoy-gateway-system` (`gateway-api`).",
    ),
    k(
        "discovery.network_policy.controller_pod_labels",
        "",
        "Labels of the controller's pods (`k=v`, comma-separated, all must match); empty: `app.kubernetes.io/name=ingress-nginx`, `app.kubernetes.io/name=traefik`, or `app.kubernetes.io/name=envoy,app.kubernetes.io/component=proxy` (Envoy Gateway's proxies).",
    ),
    k(
        "discovery.network_policy.gate_pod_labels",
        "",
        "Labels of the gate's own pods (`k=v`, comma-separated), admitted to each workspace's SSH port (`routing.ssh_port`'s target port) when `listen.ssh` is set; empty: `app.kubernetes.io/name=workspace-gate`, in `routing.gate_service.namespace`.",
    ),
    k(
        "routing.mode",
        "none",
        "Routing objects to write: `none`, `ingress-nginx`, `traefik` or `gateway-api` (Envoy Gateway).",
    ),
    k(
        "routing.tls_secret",
        "",
        "Wildcard TLS Secret named in each workspace Ingress (`ingress-nginx`, `traefik`); empty for none.",
    ),
    k(
        "routing.ingress_class",
        "",
        "`ingressClassName` of workspace Ingresses; empty for the cluster default.",
    ),
    k(
        "routing.auth_keepalive",
        "0",
        "`ingress-nginx`: idle connections each nginx worker keeps open to the gate for checks (`auth-keepalive`); 0 opens one per check. ingress-nginx honours it only with `use-http2: \"false\"` in its ConfigMap.",
    ),
    k(
        "routing.ssh_port",
        "60022",
        "Workspace Service port of the workspace's own sshd: left out of the HTTP hosts and routes, and where the SSH gateway (`listen.ssh`) connects (`<service>.<namespace>.svc.<cluster_domain>:<port>`).",
    ),
    k(
        "routing.gate_service.name",
        "",
        "Name of the gate's Service (check endpoints); required unless `routing.mode` is `none`.",
    ),
    k(
        "routing.gate_service.namespace",
        "",
        "Namespace of the gate's Service; required unless `routing.mode` is `none`.",
    ),
    k(
        "routing.gate_service.http_port",
        "8080",
        "Service port of the gate's HTTP listener (`/check/*`, `/.workspace-gate/*`).",
    ),
    k(
        "routing.gate_service.grpc_port",
        "9091",
        "Service port of the gate's ext_authz gRPC listener (`gateway-api` mode).",
    ),
    k(
        "routing.gate_service.https_port",
        "",
        "Service port of the gate's HTTPS listener (`listen.https`); when set, `traefik` mode points forwardAuth at `https://<gate>:<port>/check/traefik`. Empty keeps plain HTTP.",
    ),
    k(
        "routing.traefik_ca_secret",
        "",
        "`traefik` with `routing.gate_service.https_port`: Secret in each workspace namespace holding the CA (`ca.crt` or `tls.ca`) that Traefik verifies the gate's certificate with (the Middleware's `tls.caSecret`); empty uses Traefik's system roots.",
    ),
    k(
        "routing.gate_service.cluster_domain",
        "cluster.local",
        "Cluster DNS domain used to build the gate's in-cluster address.",
    ),
    k(
        "routing.gateway.name",
        "",
        "Gateway that workspace HTTPRoutes attach to (`gateway-api` mode).",
    ),
    k(
        "routing.gateway.namespace",
        "",
        "Namespace of that Gateway (`gateway-api` mode).",
    ),
    k(
        "routing.gateway.section_name",
        "",
        "Listener of that Gateway to attach to; empty attaches to every listener that allows the route.",
    ),
];

const fn k(key: &'static str, default: &'static str, doc: &'static str) -> KeyDoc {
    KeyDoc { key, default, doc }
}

/// One key of the table.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

impl KeyDoc {
    /// `WORKSPACE_GATE_<KEY>`: dots and dashes become `_`, upper-case.
    pub fn env_name(&self) -> String {
        format!(
            "WORKSPACE_GATE_{}",
            self.key.replace(['.', '-'], "_").to_ascii_uppercase()
        )
    }
}

/// Keys whose value is a list (comma-separated in the environment).
pub(super) const LIST_KEYS: &[&str] = &["oidc.scopes", "keys.files", "discovery.namespaces"];

/// The documented default of `key` (empty when it has none).
pub(super) fn default_of(key: &str) -> &'static str {
    KEYS.iter()
        .find(|kd| kd.key == key)
        .map(|kd| kd.default)
        .unwrap_or("")
}
