//! Configuration: a YAML file, overridden key by key by environment
//! variables `WORKSPACE_GATE_<KEY>` (dots and dashes become `_`, upper-case:
//! `oidc.client_id` is `WORKSPACE_GATE_OIDC_CLIENT_ID`). Secrets are read from
//! files. Every problem is collected and reported together, each with its key,
//! before anything listens.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

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
        "form_post",
        "How the auth host hands a pass to a workspace host: `form_post` (token in a POST body; ingress-nginx) or `query` (token in the callback URL; needed behind Traefik and Envoy, whose checks carry no body).",
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
        "GitLab base URL for GraphQL (`<gitlab_url>/api/graphql`); defaults to `oidc.issuer`.",
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
    // Discovery and routing (validated by `discovery::DiscoveryConfig::parse`).
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

#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

impl KeyDoc {
    pub fn env_name(&self) -> String {
        format!(
            "WORKSPACE_GATE_{}",
            self.key.replace(['.', '-'], "_").to_ascii_uppercase()
        )
    }
}

/// Keys whose value is a list (comma-separated in the environment).
const LIST_KEYS: &[&str] = &["oidc.scopes", "keys.files"];

pub use crate::scheme::Scheme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMethod {
    FormPost,
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceSource {
    File(PathBuf),
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzMode {
    Gitlab,
    OwnerAnnotation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub grpc: Option<SocketAddr>,
    /// `listen.https`; set only together with [`Config::tls`].
    pub https: Option<SocketAddr>,
    pub https_max_connection_age: Duration,
}

/// Certificate and key files of `listen.https` (checked at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone)]
pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub username_claim: String,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub pass_ttl: Duration,
    pub login_ttl: Duration,
    pub transfer_ttl: Duration,
    pub transfer: TransferMethod,
}

#[derive(Debug, Clone)]
pub struct Authorization {
    pub mode: AuthzMode,
    pub gitlab_url: String,
    pub cache_ttl: Duration,
}

/// A validated configuration. Secrets have been read; key material is raw bytes.
#[derive(Clone)]
pub struct Config {
    pub auth_host: String,
    pub workspace_domain: String,
    pub public_scheme: Scheme,
    pub public_port: Option<u16>,
    pub listen: Listen,
    pub tls: Option<TlsFiles>,
    pub oidc: Oidc,
    pub keys: Vec<Vec<u8>>,
    pub session: Session,
    pub workspaces: WorkspaceSource,
    pub authorization: Authorization,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Sections owned by other components (`discovery`, `routing`), kept
    /// as YAML for them to validate.
    pub extra: BTreeMap<String, Value>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("auth_host", &self.auth_host)
            .field("workspace_domain", &self.workspace_domain)
            .field("public_scheme", &self.public_scheme)
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("oidc", &self.oidc)
            .field("keys", &format_args!("{} key(s)", self.keys.len()))
            .field("session", &self.session)
            .field("workspaces", &self.workspaces)
            .field("authorization", &self.authorization)
            .finish()
    }
}

/// One configuration problem: the key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

/// Every problem found, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  - {}: {}", p.key, p.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Top-level sections that other components validate themselves.
const EXTRA_SECTIONS: &[&str] = &["discovery", "routing"];

impl Config {
    /// Loads `path` (optional: environment alone may configure everything),
    /// applies the environment, resolves relative paths against the file's
    /// directory and validates.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let (mut root, base) = match path {
            Some(p) => match crate::files::read_text(p, crate::files::SMALL).and_then(|text| {
                crate::files::check_yaml_nesting(&text)?;
                Ok(text)
            }) {
                Ok(text) => match serde_yaml::from_str::<Value>(&text) {
                    Ok(Value::Null) => (Value::Mapping(Default::default()), parent(p)),
                    Ok(v @ Value::Mapping(_)) => (v, parent(p)),
                    Ok(_) => {
                        problems.push(problem("(file)", "the file must be a YAML mapping"));
                        (Value::Mapping(Default::default()), parent(p))
                    }
                    Err(e) => {
                        problems.push(problem("(file)", format!("{}: {e}", p.display())));
                        (Value::Mapping(Default::default()), parent(p))
                    }
                },
                Err(e) => {
                    problems.push(problem(
                        "(file)",
                        format!("cannot read {}: {e}", p.display()),
                    ));
                    (Value::Mapping(Default::default()), PathBuf::from("."))
                }
            },
            None => (Value::Mapping(Default::default()), PathBuf::from(".")),
        };
        for kd in KEYS {
            if let Some(v) = env(&kd.env_name()) {
                let value = if LIST_KEYS.contains(&kd.key) {
                    Value::Sequence(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| Value::String(s.to_string()))
                            .collect(),
                    )
                } else {
                    Value::String(v)
                };
                set_path(&mut root, kd.key, value);
            }
        }
        unknown_keys(&root, "", &mut problems);
        let mut r = Reader {
            root: &root,
            problems,
            base,
        };
        let cfg = r.build();
        // The discovery and routing sections are validated by their owner,
        // in the same pass, so one message still names every problem.
        if (cfg.workspaces == WorkspaceSource::Kubernetes || !cfg.extra.is_empty())
            && let Err(more) = crate::discovery::DiscoveryConfig::parse_with_env(&cfg, env)
        {
            r.problems.extend(more);
        }
        if r.problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(r.problems))
        }
    }

    /// `<scheme>://<auth_host>[:<public_port>]`, as browsers reach it.
    pub fn auth_origin(&self) -> String {
        crate::scheme::origin(
            self.public_scheme,
            &self.auth_host.to_ascii_lowercase(),
            self.public_port,
        )
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.auth_origin())
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The documented default of `key` (empty when it has none).
pub(crate) fn key_default(key: &str) -> &'static str {
    KEYS.iter()
        .find(|kd| kd.key == key)
        .map(|kd| kd.default)
        .unwrap_or("")
}

/// A single value as a string (numbers and booleans accepted), the key's
/// default when absent; a list or mapping is a problem.
pub(crate) fn scalar(value: Option<&Value>, key: &str, problems: &mut Vec<Problem>) -> String {
    match value {
        None => key_default(key).to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(_) => {
            problems.push(problem(key, "must be a single value"));
            String::new()
        }
    }
}

fn problem(key: &str, reason: impl Into<String>) -> Problem {
    Problem {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn set_path(root: &mut Value, dotted: &str, value: Value) {
    let mut cur = root;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_mapping() {
            *cur = Value::Mapping(Default::default());
        }
        let map = cur.as_mapping_mut().expect("just made a mapping");
        let key = Value::String(part.to_string());
        if i == parts.len() - 1 {
            map.insert(key, value);
            return;
        }
        cur = map
            .entry(key)
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
}

fn unknown_keys(v: &Value, prefix: &str, problems: &mut Vec<Problem>) {
    let Some(map) = v.as_mapping() else { return };
    for (k, child) in map {
        let Some(name) = k.as_str() else {
            problems.push(problem(prefix, "keys must be strings"));
            continue;
        };
        let full = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        if prefix.is_empty() && EXTRA_SECTIONS.contains(&name) {
            continue;
        }
        if KEYS.iter().any(|kd| kd.key == full) {
            continue;
        }
        let section = format!("{full}.");
        if KEYS.iter().any(|kd| kd.key.starts_with(&section)) {
            unknown_keys(child, &full, problems);
        } else {
            problems.push(problem(&full, "unknown key"));
        }
    }
}

struct Reader<'a> {
    root: &'a Value,
    problems: Vec<Problem>,
    base: PathBuf,
}

impl<'a> Reader<'a> {
    fn raw(&self, key: &str) -> Option<&'a Value> {
        let mut cur = self.root;
        for part in key.split('.') {
            cur = cur.as_mapping()?.get(part)?;
        }
        if cur.is_null() { None } else { Some(cur) }
    }

    fn default(key: &str) -> &'static str {
        key_default(key)
    }

    /// The value as a string (numbers and booleans accepted), or the default.
    fn string(&mut self, key: &str) -> String {
        scalar(self.raw(key), key, &mut self.problems)
    }

    fn required(&mut self, key: &str) -> String {
        let s = self.string(key);
        if s.is_empty() {
            self.problems.push(problem(key, "is required"));
        }
        s
    }

    fn list(&mut self, key: &str) -> Vec<String> {
        match self.raw(key) {
            None => Self::default(key)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Some(Value::Sequence(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => out.push(s.trim().to_string()),
                        None => self.problems.push(problem(key, "items must be strings")),
                    }
                }
                out
            }
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Some(_) => {
                self.problems.push(problem(key, "must be a list"));
                Vec::new()
            }
        }
    }

    fn path(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    fn duration(&mut self, key: &str) -> Duration {
        let s = self.string(key);
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.problems.push(problem(key, "must be longer than zero"));
                Duration::from_secs(1)
            }
            Err(e) => {
                self.problems.push(problem(
                    key,
                    format!("'{s}' is not a duration like 60s, 12h or 7d ({e})"),
                ));
                Duration::from_secs(1)
            }
        }
    }

    fn addr(&mut self, key: &str, optional: bool) -> Option<SocketAddr> {
        let s = self.string(key);
        if s.is_empty() && optional {
            return None;
        }
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problems.push(problem(
                    key,
                    format!("'{s}' is not an address like 127.0.0.1:8080"),
                ));
                None
            }
        }
    }

    /// `tls.cert_file` and `tls.key_file`: both or neither, and both only
    /// with `listen.https`; the pair must load.
    fn tls_files(&mut self, https: bool) -> Option<TlsFiles> {
        let cert = self.string("tls.cert_file");
        let key = self.string("tls.key_file");
        if cert.is_empty() && key.is_empty() {
            if https {
                for k in ["tls.cert_file", "tls.key_file"] {
                    self.problems
                        .push(problem(k, "is required when listen.https is set"));
                }
            }
            return None;
        }
        if !https {
            self.problems.push(problem(
                "listen.https",
                "is required when tls.cert_file or tls.key_file is set (they are used by it alone)",
            ));
            return None;
        }
        for (k, v) in [("tls.cert_file", &cert), ("tls.key_file", &key)] {
            if v.is_empty() {
                self.problems
                    .push(problem(k, "is required when listen.https is set"));
            }
        }
        if cert.is_empty() || key.is_empty() {
            return None;
        }
        let files = TlsFiles {
            cert: self.path(&cert),
            key: self.path(&key),
        };
        match crate::server::tls::load(&files.cert, &files.key) {
            Ok(_) => Some(files),
            Err(crate::server::tls::TlsFileError::Cert(reason)) => {
                self.problems.push(problem("tls.cert_file", reason));
                None
            }
            Err(crate::server::tls::TlsFileError::Key(reason)) => {
                self.problems.push(problem("tls.key_file", reason));
                None
            }
        }
    }

    fn host(&mut self, key: &str) -> String {
        let s = self.required(key).to_ascii_lowercase();
        if !s.is_empty() && !crate::dns::is_dns_name(&s) {
            self.problems.push(problem(
                key,
                format!("'{s}' is not a host name (no scheme, port or path)"),
            ));
        }
        s
    }

    fn secret_file(&mut self, key: &str) -> String {
        let s = self.required(key);
        if s.is_empty() {
            return s;
        }
        let p = self.path(&s);
        match crate::files::read_text(&p, crate::files::SMALL) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            Ok(_) => {
                self.problems
                    .push(problem(key, format!("{} is empty", p.display())));
                String::new()
            }
            Err(e) => {
                self.problems
                    .push(problem(key, format!("cannot read {}: {e}", p.display())));
                String::new()
            }
        }
    }

    fn keys(&mut self) -> Vec<Vec<u8>> {
        let files = self.list("keys.files");
        if files.is_empty() {
            self.problems.push(problem(
                "keys.files",
                "at least one key file is required (create one with `workspace-gate keygen`)",
            ));
        }
        let mut keys = Vec::new();
        for f in files {
            let p = self.path(&f);
            match crate::files::read_text(&p, crate::files::SMALL) {
                Ok(text) => match crate::session::keyring::parse_key(&text) {
                    Ok(k) => keys.push(k),
                    Err(e) => self
                        .problems
                        .push(problem("keys.files", format!("{}: {e}", p.display()))),
                },
                Err(e) => self.problems.push(problem(
                    "keys.files",
                    format!("cannot read {}: {e}", p.display()),
                )),
            }
        }
        keys
    }

    fn build(&mut self) -> Config {
        let auth_host = self.host("auth_host");
        let workspace_domain = self.host("workspace_domain");
        if !auth_host.is_empty() && auth_host.ends_with(&format!(".{workspace_domain}")) {
            let label = &auth_host[..auth_host.len() - workspace_domain.len() - 1];
            if !label.contains('.') {
                self.problems.push(problem(
                    "auth_host",
                    "must not itself be a workspace host (<label>.<workspace_domain>); use the domain itself or another host",
                ));
            }
        }
        let scheme = match self.string("public_scheme").as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => {
                self.problems.push(problem(
                    "public_scheme",
                    format!("'{other}' must be https or http"),
                ));
                Scheme::Https
            }
        };
        let public_port = match self.string("public_port").as_str() {
            "" => None,
            p => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.problems.push(problem(
                        "public_port",
                        format!("'{p}' is not a port number"),
                    ));
                    None
                }
            },
        };
        let http = self.addr("listen.http", false);
        let admin = self.addr("listen.admin", false);
        let grpc = self.addr("listen.grpc", true);
        let https = self.addr("listen.https", true);
        // Given but unparsable is reported once, by `addr`.
        let https_given = !self.string("listen.https").is_empty();
        let tls = self.tls_files(https_given);
        let https_max_connection_age = self.duration("listen.https_max_connection_age");
        if scheme == Scheme::Http {
            let all_loopback = [http, admin, grpc, https]
                .iter()
                .flatten()
                .all(|a| a.ip().is_loopback());
            if !all_loopback {
                self.problems.push(problem(
                    "public_scheme",
                    "http is allowed only when every listener is on loopback; use https",
                ));
            }
        }
        let issuer = self.required("oidc.issuer");
        if !issuer.is_empty() {
            match url::Url::parse(&issuer) {
                Ok(u) if u.scheme() == "https" => {}
                Ok(u)
                    if u.scheme() == "http"
                        && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => {}
                Ok(_) => self.problems.push(problem(
                    "oidc.issuer",
                    "must be an https URL (http only for a provider on loopback)",
                )),
                Err(e) => self.problems.push(problem(
                    "oidc.issuer",
                    format!("'{issuer}' is not a URL: {e}"),
                )),
            }
        }
        let client_id = self.required("oidc.client_id");
        let client_secret = self.secret_file("oidc.client_secret_file");
        let scopes = self.list("oidc.scopes");
        if !scopes.iter().any(|s| s == "openid") {
            self.problems
                .push(problem("oidc.scopes", "must include openid"));
        }
        let username_claim = self.string("oidc.username_claim");
        let keys = self.keys();
        let pass_ttl = self.duration("session.pass_ttl");
        let login_ttl = self.duration("session.login_ttl");
        let transfer_ttl = self.duration("session.transfer_ttl");
        if transfer_ttl > Duration::from_secs(60) {
            self.problems
                .push(problem("session.transfer_ttl", "must be at most 60s"));
        }
        let transfer = match self.string("session.transfer").as_str() {
            "form_post" => TransferMethod::FormPost,
            "query" => TransferMethod::Query,
            other => {
                self.problems.push(problem(
                    "session.transfer",
                    format!("'{other}' must be form_post or query"),
                ));
                TransferMethod::FormPost
            }
        };
        let workspaces = match self.string("workspaces.source").as_str() {
            "file" => {
                let f = self.required("workspaces.file");
                WorkspaceSource::File(self.path(&f))
            }
            "kubernetes" => WorkspaceSource::Kubernetes,
            other => {
                self.problems.push(problem(
                    "workspaces.source",
                    format!("'{other}' must be file or kubernetes"),
                ));
                WorkspaceSource::Kubernetes
            }
        };
        let mode = match self.string("authorization.mode").as_str() {
            "gitlab" => AuthzMode::Gitlab,
            "owner-annotation" => AuthzMode::OwnerAnnotation,
            other => {
                self.problems.push(problem(
                    "authorization.mode",
                    format!("'{other}' must be gitlab or owner-annotation"),
                ));
                AuthzMode::Gitlab
            }
        };
        let mut gitlab_url = self.string("authorization.gitlab_url");
        if gitlab_url.is_empty() {
            gitlab_url = issuer.clone();
        }
        if mode == AuthzMode::Gitlab && url::Url::parse(&gitlab_url).is_err() && !issuer.is_empty()
        {
            self.problems.push(problem(
                "authorization.gitlab_url",
                format!("'{gitlab_url}' is not a URL"),
            ));
        }
        let cache_ttl = self.duration("authorization.cache_ttl");
        if cache_ttl > Duration::from_secs(60) {
            self.problems
                .push(problem("authorization.cache_ttl", "must be at most 60s"));
        }
        let log_format = match self.string("log.format").as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                self.problems.push(problem(
                    "log.format",
                    format!("'{other}' must be json or text"),
                ));
                LogFormat::Json
            }
        };
        let log_level = self.string("log.level");
        let mut extra = BTreeMap::new();
        for section in EXTRA_SECTIONS {
            if let Some(v) = self.raw(section) {
                extra.insert(section.to_string(), v.clone());
            }
        }
        Config {
            auth_host,
            workspace_domain,
            public_scheme: scheme,
            public_port,
            listen: Listen {
                http: http.unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
                admin: admin.unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
                grpc,
                https: https.filter(|_| tls.is_some()),
                https_max_connection_age,
            },
            tls,
            oidc: Oidc {
                issuer: issuer.trim_end_matches('/').to_string(),
                client_id,
                client_secret,
                scopes,
                username_claim,
            },
            keys,
            session: Session {
                pass_ttl,
                login_ttl,
                transfer_ttl,
                transfer,
            },
            workspaces,
            authorization: Authorization {
                mode,
                gitlab_url: gitlab_url.trim_end_matches('/').to_string(),
                cache_ttl,
            },
            log_format,
            log_level,
            extra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn broken_config_reports_every_problem_with_its_key() {
        let dir = std::env::temp_dir().join(format!("wg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.yaml");
        std::fs::write(
            &f,
            "auth_host: 'https://x'\npublic_scheme: ftp\nlisten: {http: nope}\nsession: {pass_ttl: soon}\ntypo: 1\n",
        )
        .unwrap();
        let err = Config::load(Some(&f), &no_env).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "auth_host",
            "workspace_domain",
            "public_scheme",
            "listen.http",
            "oidc.issuer",
            "oidc.client_id",
            "oidc.client_secret_file",
            "keys.files",
            "session.pass_ttl",
            "workspaces.file",
            "typo",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
        }
    }

    /// A minimal valid configuration in `dir` plus `extra` YAML lines.
    fn load_with(dir: &Path, extra: &str) -> Result<Config, ConfigErrors> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("secret"), "s").unwrap();
        std::fs::write(dir.join("key"), crate::session::keyring::generate_key()).unwrap();
        std::fs::write(dir.join("ws.yaml"), "workspaces: []\n").unwrap();
        let f = dir.join("gate.yaml");
        std::fs::write(
            &f,
            format!(
                "auth_host: a.test\nworkspace_domain: w.test\n\
oidc: {{issuer: 'https://id.test', client_id: c, client_secret_file: secret}}\n\
keys: {{files: [key]}}\nworkspaces: {{source: file, file: ws.yaml}}\n{extra}"
            ),
        )
        .unwrap();
        Config::load(Some(&f), &no_env)
    }

    /// A self-signed certificate and its key, as PEM files `<name>.crt`
    /// and `<name>.key`.
    fn self_signed(dir: &Path, name: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["gate.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    fn problem_keys(r: Result<Config, ConfigErrors>) -> Vec<String> {
        r.unwrap_err().0.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn https_listener_loads_its_certificate_and_refuses_half_setups() {
        let dir = std::env::temp_dir().join(format!("wg-cfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        self_signed(&dir, "a");
        self_signed(&dir, "b");
        std::fs::write(dir.join("junk.crt"), "not pem\n").unwrap();

        let ok = load_with(
            &dir,
            "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt, key_file: a.key}\n",
        )
        .unwrap();
        assert_eq!(ok.listen.https, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(ok.tls.unwrap().cert, dir.join("a.crt"));
        let off = load_with(&dir, "").unwrap();
        assert_eq!((off.listen.https, off.tls), (None, None));

        for (extra, want) in [
            (
                "listen: {https: '0.0.0.0:8443'}\n",
                vec!["tls.cert_file", "tls.key_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt}\n",
                vec!["tls.key_file"],
            ),
            (
                "tls: {cert_file: a.crt, key_file: a.key}\n",
                vec!["listen.https"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt, key_file: b.key}\n",
                vec!["tls.key_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: junk.crt, key_file: a.key}\n",
                vec!["tls.cert_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: missing.crt, key_file: a.key}\n",
                vec!["tls.cert_file"],
            ),
            (
                "listen: {https: '0.0.0.0:8443'}\ntls: {cert_file: a.crt, key_file: a.crt}\n",
                vec!["tls.key_file"],
            ),
            (
                "listen: {https: nope}\ntls: {cert_file: a.crt, key_file: a.key}\n",
                vec!["listen.https"],
            ),
        ] {
            assert_eq!(problem_keys(load_with(&dir, extra)), want, "{extra}");
        }
    }

    #[test]
    fn env_names_follow_the_key() {
        let kd = KEYS.iter().find(|k| k.key == "oidc.client_id").unwrap();
        assert_eq!(kd.env_name(), "WORKSPACE_GATE_OIDC_CLIENT_ID");
    }
}
