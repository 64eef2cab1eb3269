//! The `discovery` and `routing` sections of the configuration.
//!
//! `config::Config` keeps both sections as raw YAML (with the environment
//! overrides already applied); this file turns them into a
//! [`DiscoveryConfig`], reporting every problem at once, each with its
//! dotted key, the same way the core configuration does.

use std::time::Duration;

use serde_yaml::Value;

use crate::config::{KEYS, Problem};

/// Which namespaces discovery watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// Every namespace (one cluster-wide watch).
    All,
    /// Only these namespaces (one watch each; allows namespaced RBAC).
    List(Vec<String>),
    /// Namespaces whose labels match this selector (a cluster-wide Service
    /// watch filtered by a Namespace watch).
    Selector(String),
}

/// Which ingress controller the reconciler writes objects for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingMode {
    /// Write nothing; only the index is built.
    None,
    IngressNginx,
    Traefik,
    GatewayApi,
}

impl RoutingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMode::None => "none",
            RoutingMode::IngressNginx => "ingress-nginx",
            RoutingMode::Traefik => "traefik",
            RoutingMode::GatewayApi => "gateway-api",
        }
    }
}

/// The gate's own Service, which controllers call for checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateService {
    pub name: String,
    pub namespace: String,
    pub http_port: u16,
    pub grpc_port: u16,
    /// The Service port of the gate's HTTPS listener, when it has one.
    /// Traefik's forwardAuth uses it: over https it negotiates HTTP/2 and
    /// multiplexes checks on one connection, over http it opens a
    /// connection per check.
    pub https_port: Option<u16>,
    pub cluster_domain: String,
}

impl GateService {
    /// `<name>.<namespace>.svc.<cluster domain>`
    pub fn dns_name(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            self.name, self.namespace, self.cluster_domain
        )
    }
}

/// The Gateway that HTTPRoutes attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    pub name: String,
    pub namespace: String,
    pub section_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    pub mode: RoutingMode,
    /// Wildcard TLS secret in each workspace namespace (Ingress modes).
    pub tls_secret: Option<String>,
    pub ingress_class: Option<String>,
    /// ingress-nginx `auth-keepalive`; 0 leaves it out.
    pub auth_keepalive: u32,
    pub gate: GateService,
    /// Required in `gateway-api` mode.
    pub gateway: Option<GatewayRef>,
    /// Secret (in each workspace namespace) with the CA Traefik verifies
    /// the gate's certificate with; only with `gate.https_port`. None:
    /// Traefik's system roots.
    pub traefik_ca_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub duration: Duration,
    pub identity: String,
}

/// Validated discovery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    pub namespaces: NamespaceScope,
    pub owner_id_annotation: String,
    pub owner_username_annotation: String,
    pub lease: LeaseConfig,
    /// How often the leader compares every managed object with what it
    /// wants (puts back hand edits, deletes orphans).
    pub resync_interval: Duration,
    pub routing: RoutingConfig,
}

impl DiscoveryConfig {
    /// Validates the `discovery` and `routing` sections, reading the
    /// process environment for `POD_NAMESPACE` / `POD_NAME` defaults.
    pub fn parse(cfg: &crate::config::Config) -> Result<DiscoveryConfig, Vec<Problem>> {
        Self::parse_with_env(cfg, &|k| std::env::var(k).ok())
    }

    /// As [`parse`](Self::parse), with an injectable environment (tests).
    pub fn parse_with_env(
        cfg: &crate::config::Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DiscoveryConfig, Vec<Problem>> {
        let mut r = Reader {
            discovery: cfg.extra.get("discovery"),
            routing: cfg.extra.get("routing"),
            problems: Vec::new(),
        };
        r.unknown_keys();
        let out = r.build(env);
        if r.problems.is_empty() {
            Ok(out)
        } else {
            Err(r.problems)
        }
    }
}

struct Reader<'a> {
    discovery: Option<&'a Value>,
    routing: Option<&'a Value>,
    problems: Vec<Problem>,
}

fn problem(key: &str, reason: impl Into<String>) -> Problem {
    Problem {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Keys of the two sections, as listed in `config::KEYS`.
fn own_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .map(|k| k.key)
        .filter(|k| k.starts_with("discovery.") || k.starts_with("routing."))
}

impl<'a> Reader<'a> {
    fn raw(&self, key: &str) -> Option<&'a Value> {
        let (section, rest) = key.split_once('.')?;
        let mut cur = match section {
            "discovery" => self.discovery?,
            "routing" => self.routing?,
            _ => return None,
        };
        for part in rest.split('.') {
            cur = cur.as_mapping()?.get(part)?;
        }
        if cur.is_null() { None } else { Some(cur) }
    }

    fn unknown_keys(&mut self) {
        for (name, section) in [("discovery", self.discovery), ("routing", self.routing)] {
            match section {
                None | Some(Value::Null) => {}
                Some(v @ Value::Mapping(_)) => walk(v, name, &mut self.problems),
                Some(_) => self.problems.push(problem(name, "must be a mapping")),
            }
        }
        fn walk(v: &Value, prefix: &str, problems: &mut Vec<Problem>) {
            let Some(map) = v.as_mapping() else { return };
            for (k, child) in map {
                let Some(name) = k.as_str() else {
                    problems.push(problem(prefix, "keys must be strings"));
                    continue;
                };
                let full = format!("{prefix}.{name}");
                if own_keys().any(|k| k == full) {
                    continue;
                }
                let section = format!("{full}.");
                if own_keys().any(|k| k.starts_with(&section)) {
                    walk(child, &full, problems);
                } else {
                    problems.push(problem(&full, "unknown key"));
                }
            }
        }
    }

    fn string(&mut self, key: &str) -> String {
        crate::config::scalar(self.raw(key), key, &mut self.problems)
    }

    fn optional(&mut self, key: &str) -> Option<String> {
        Some(self.string(key)).filter(|s| !s.is_empty())
    }

    fn list(&mut self, key: &str) -> Vec<String> {
        match self.raw(key) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                        _ => self
                            .problems
                            .push(problem(key, "items must be non-empty strings")),
                    }
                }
                out
            }
            // The environment gives lists comma-separated.
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

    fn duration(&mut self, key: &str, min: Duration) -> Duration {
        let s = self.string(key);
        match humantime::parse_duration(&s) {
            Ok(d) if d >= min => d,
            Ok(_) => {
                self.problems.push(problem(
                    key,
                    format!("must be at least {}", humantime::format_duration(min)),
                ));
                min
            }
            Err(e) => {
                self.problems.push(problem(
                    key,
                    format!("'{s}' is not a duration like 15s or 5m ({e})"),
                ));
                min
            }
        }
    }

    fn port(&mut self, key: &str) -> u16 {
        let s = self.string(key);
        self.parse_port(key, &s)
    }

    /// A port that may be left empty (the feature it serves is off).
    fn optional_port(&mut self, key: &str) -> Option<u16> {
        let s = self.string(key);
        (!s.is_empty()).then(|| self.parse_port(key, &s))
    }

    fn parse_port(&mut self, key: &str, s: &str) -> u16 {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                self.problems
                    .push(problem(key, format!("'{s}' is not a port number")));
                1
            }
        }
    }

    /// A whole number from 0 to `max`.
    fn count(&mut self, key: &str, max: u32) -> u32 {
        let s = self.string(key);
        match s.parse::<u32>() {
            Ok(n) if n <= max => n,
            _ => {
                self.problems.push(problem(
                    key,
                    format!("'{s}' is not a whole number from 0 to {max}"),
                ));
                0
            }
        }
    }

    /// A Kubernetes object or namespace name (DNS-1123 label).
    fn name(&mut self, key: &str, required: bool) -> Option<String> {
        let s = self.string(key);
        if s.is_empty() {
            if required {
                self.problems.push(problem(key, "is required"));
            }
            return None;
        }
        if !is_dns_label(&s) {
            self.problems.push(problem(
                key,
                format!(
                    "'{s}' is not a Kubernetes name (lower-case letters, digits, '-', at most 63)"
                ),
            ));
        }
        Some(s)
    }

    fn annotation_key(&mut self, key: &str) -> String {
        let s = self.string(key);
        if !is_qualified_name(&s) {
            self.problems.push(problem(
                key,
                format!("'{s}' is not an annotation key like example.com/name"),
            ));
        }
        s
    }

    fn build(&mut self, env: &dyn Fn(&str) -> Option<String>) -> DiscoveryConfig {
        let list = self.list("discovery.namespaces");
        for ns in &list {
            if !is_dns_label(ns) {
                self.problems.push(problem(
                    "discovery.namespaces",
                    format!("'{ns}' is not a namespace name"),
                ));
            }
        }
        let selector = self.string("discovery.namespace_selector");
        if !selector.is_empty()
            && let Err(e) = validate_selector(&selector)
        {
            self.problems
                .push(problem("discovery.namespace_selector", e));
        }
        let namespaces = match (list.is_empty(), selector.is_empty()) {
            (true, true) => NamespaceScope::All,
            (false, true) => NamespaceScope::List(list),
            (true, false) => NamespaceScope::Selector(selector),
            (false, false) => {
                self.problems.push(problem(
                    "discovery.namespace_selector",
                    "set either discovery.namespaces or discovery.namespace_selector, not both",
                ));
                NamespaceScope::All
            }
        };
        let owner_id_annotation = self.annotation_key("discovery.owner_id_annotation");
        let owner_username_annotation = self.annotation_key("discovery.owner_username_annotation");
        let lease_name = self.name("discovery.lease_name", true).unwrap_or_default();
        let lease_namespace = match self.raw("discovery.lease_namespace") {
            Some(_) => self.name("discovery.lease_namespace", true),
            None => None,
        }
        .or_else(|| env("POD_NAMESPACE").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "default".to_string());
        let lease_duration = self.duration("discovery.lease_duration", Duration::from_secs(1));
        let identity = self
            .optional("discovery.identity")
            .or_else(|| env("POD_NAME").filter(|s| !s.is_empty()))
            .or_else(|| env("HOSTNAME").filter(|s| !s.is_empty()))
            .or_else(hostname)
            .unwrap_or_else(|| format!("workspace-gate-{}", uuid::Uuid::new_v4()));
        let resync_interval = self.duration("discovery.resync_interval", Duration::from_secs(1));

        let mode = match self.string("routing.mode").as_str() {
            "none" => RoutingMode::None,
            "ingress-nginx" => RoutingMode::IngressNginx,
            "traefik" => RoutingMode::Traefik,
            "gateway-api" => RoutingMode::GatewayApi,
            other => {
                self.problems.push(problem(
                    "routing.mode",
                    format!("'{other}' must be none, ingress-nginx, traefik or gateway-api"),
                ));
                RoutingMode::None
            }
        };
        let writes = mode != RoutingMode::None;
        let tls_secret = self.name("routing.tls_secret", false);
        let ingress_class = self.name("routing.ingress_class", false);
        let auth_keepalive = self.count("routing.auth_keepalive", 4096);
        let gate = GateService {
            name: self
                .name("routing.gate_service.name", writes)
                .unwrap_or_default(),
            namespace: self
                .name("routing.gate_service.namespace", writes)
                .unwrap_or_default(),
            http_port: self.port("routing.gate_service.http_port"),
            grpc_port: self.port("routing.gate_service.grpc_port"),
            https_port: self.optional_port("routing.gate_service.https_port"),
            cluster_domain: self.string("routing.gate_service.cluster_domain"),
        };
        if !crate::workspaces::template::is_dns_name(&gate.cluster_domain) {
            self.problems.push(problem(
                "routing.gate_service.cluster_domain",
                format!("'{}' is not a DNS name", gate.cluster_domain),
            ));
        }
        let traefik_ca_secret = self.name("routing.traefik_ca_secret", false);
        if traefik_ca_secret.is_some() && gate.https_port.is_none() {
            self.problems.push(problem(
                "routing.traefik_ca_secret",
                "only used with routing.gate_service.https_port",
            ));
        }
        let gw = mode == RoutingMode::GatewayApi;
        let gw_name = self.name("routing.gateway.name", gw);
        let gw_namespace = self.name("routing.gateway.namespace", gw);
        let section_name = self.optional("routing.gateway.section_name");
        let gateway = match (gw_name, gw_namespace) {
            (Some(name), Some(namespace)) => Some(GatewayRef {
                name,
                namespace,
                section_name,
            }),
            _ => None,
        };
        DiscoveryConfig {
            namespaces,
            owner_id_annotation,
            owner_username_annotation,
            lease: LeaseConfig {
                name: lease_name,
                namespace: lease_namespace,
                duration: lease_duration,
                identity,
            },
            resync_interval,
            routing: RoutingConfig {
                mode,
                tls_secret,
                ingress_class,
                auth_keepalive,
                gate,
                gateway,
                traefik_ca_secret,
            },
        }
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// DNS-1123 label: what Kubernetes accepts as a namespace or Service name.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[prefix/]name` as Kubernetes accepts for label and annotation keys.
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let prefix_ok = prefix.is_none_or(crate::workspaces::template::is_dns_name);
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    prefix_ok && name_ok
}

/// Checks the equality-based selector forms the gate passes to the API
/// server: `k`, `!k`, `k=v`, `k==v`, `k!=v`, comma-separated.
pub(crate) fn validate_selector(sel: &str) -> Result<(), String> {
    for term in sel.split(',').map(str::trim) {
        let key = if let Some(k) = term.strip_prefix('!') {
            k
        } else if let Some((k, v)) = term
            .split_once("!=")
            .or_else(|| term.split_once("=="))
            .or_else(|| term.split_once('='))
        {
            if !v.is_empty() && !is_qualified_name(v.trim()) {
                return Err(format!("'{term}': '{v}' is not a label value"));
            }
            k
        } else {
            term
        };
        if !is_qualified_name(key.trim()) {
            return Err(format!(
                "'{term}' is not a label selector term (k, !k, k=v, k!=v)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        assert!(is_qualified_name("workspace-gate.dev/owner-id"));
        assert!(is_qualified_name("team"));
        assert!(!is_qualified_name("bad key"));
        assert!(!is_qualified_name("Example.com/x"));
    }

    #[test]
    fn selectors() {
        assert!(validate_selector("team=a,!legacy,env!=prod").is_ok());
        assert!(validate_selector("a b").is_err());
        assert!(validate_selector("a in (b)").is_err());
    }

    /// Parses a `traefik` routing section with `extra` lines appended, as
    /// the configuration loader would.
    fn traefik_routing(extra: &str) -> Result<RoutingConfig, Vec<(String, String)>> {
        let routing: Value = serde_yaml::from_str(&format!(
            "mode: traefik\ngate_service:\n  name: gate\n  namespace: gate-ns\n{extra}"
        ))
        .unwrap();
        let mut r = Reader {
            discovery: None,
            routing: Some(&routing),
            problems: Vec::new(),
        };
        r.unknown_keys();
        let out = r.build(&|_| None);
        if r.problems.is_empty() {
            Ok(out.routing)
        } else {
            Err(r.problems.into_iter().map(|p| (p.key, p.reason)).collect())
        }
    }

    #[test]
    fn https_port_and_ca_secret_are_optional() {
        let r = traefik_routing("").unwrap();
        assert_eq!((r.gate.https_port, r.traefik_ca_secret), (None, None));
        let r = traefik_routing("  https_port: ''\ntraefik_ca_secret: ''\n").unwrap();
        assert_eq!((r.gate.https_port, r.traefik_ca_secret), (None, None));
        let r = traefik_routing("  https_port: 8443\ntraefik_ca_secret: gate-ca\n").unwrap();
        assert_eq!(r.gate.https_port, Some(8443));
        assert_eq!(r.traefik_ca_secret.as_deref(), Some("gate-ca"));
        assert_eq!(r.gate.http_port, 8080, "the http port is unchanged");
    }

    #[test]
    fn a_bad_https_port_is_reported_with_its_key() {
        for bad in ["0", "65536", "https", "-1", "8443.5"] {
            let problems = traefik_routing(&format!("  https_port: '{bad}'\n")).unwrap_err();
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert_eq!(problems[0].0, "routing.gate_service.https_port");
            assert!(problems[0].1.contains("not a port number"), "{problems:?}");
        }
    }

    #[test]
    fn ca_secret_must_be_a_kubernetes_name() {
        let problems =
            traefik_routing("  https_port: 8443\ntraefik_ca_secret: Gate_CA\n").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "routing.traefik_ca_secret");
        assert!(
            problems[0].1.contains("not a Kubernetes name"),
            "{problems:?}"
        );
    }

    #[test]
    fn ca_secret_without_https_port_is_refused() {
        let problems = traefik_routing("traefik_ca_secret: gate-ca\n").unwrap_err();
        assert_eq!(
            problems,
            [(
                "routing.traefik_ca_secret".to_string(),
                "only used with routing.gate_service.https_port".to_string()
            )]
        );
    }
}
