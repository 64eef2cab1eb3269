//! The `discovery` and `routing` sections: which Services discovery
//! watches, how replicas elect the one that writes, and which routing
//! objects it writes for which controller.

use std::collections::BTreeMap;
use std::time::Duration;

use super::reader::Reader;

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
    /// The workspace Service port of its sshd: no HTTP host, and the SSH
    /// gateway's backend.
    pub ssh_port: u16,
    pub gate: GateService,
    /// Required in `gateway-api` mode.
    pub gateway: Option<GatewayRef>,
    /// Secret (in each workspace namespace) with the CA Traefik verifies
    /// the gate's certificate with; only with `gate.https_port`. None:
    /// Traefik's system roots.
    pub traefik_ca_secret: Option<String>,
    /// The NetworkPolicy admitting the controller's pods to each
    /// workspace; `None` when turned off (`discovery.network_policy.enabled`).
    pub network_policy: Option<NetworkPolicyConfig>,
}

/// Which pods the per-workspace NetworkPolicy admits: the ingress
/// controller's, which GitLab's own workspace policy (admitting only GitLab's
/// workspaces proxy) keeps out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicyConfig {
    /// Namespace of the controller's pods (selected by the
    /// `kubernetes.io/metadata.name` label).
    pub controller_namespace: String,
    /// Labels all of which the controller's pods carry.
    pub controller_pod_labels: BTreeMap<String, String>,
    /// The gate's own pods, admitted to the workspace's SSH port when the
    /// SSH gateway is on (`listen.ssh`); `None` when it is off.
    pub gate_peer: Option<PodPeer>,
}

/// Pods in one namespace that carry all of some labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPeer {
    pub namespace: String,
    pub pod_labels: BTreeMap<String, String>,
}

impl NetworkPolicyConfig {
    /// Where each controller's official chart puts its pods and what it
    /// labels them with: ingress-nginx's chart in namespace `ingress-nginx`,
    /// Traefik's in `traefik`, Envoy Gateway's proxies beside its
    /// controller in `envoy-gateway-system`.
    pub fn default_for(mode: RoutingMode) -> NetworkPolicyConfig {
        let (namespace, labels): (&str, &[(&str, &str)]) = match mode {
            RoutingMode::None | RoutingMode::IngressNginx => (
                "ingress-nginx",
                &[("app.kubernetes.io/name", "ingress-nginx")],
            ),
            RoutingMode::Traefik => ("traefik", &[("app.kubernetes.io/name", "traefik")]),
            RoutingMode::GatewayApi => (
                "envoy-gateway-system",
                &[
                    ("app.kubernetes.io/name", "envoy"),
                    ("app.kubernetes.io/component", "proxy"),
                ],
            ),
        };
        NetworkPolicyConfig {
            controller_namespace: namespace.to_string(),
            controller_pod_labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gate_peer: None,
        }
    }
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

/// Reads the `discovery` and `routing` sections.
pub(super) fn read(r: &mut Reader, env: &dyn Fn(&str) -> Option<String>) -> DiscoveryConfig {
    let list = r.list("discovery.namespaces");
    for ns in &list {
        if !crate::dns::is_dns_label(ns) {
            r.problem(
                "discovery.namespaces",
                format!("'{ns}' is not a namespace name"),
            );
        }
    }
    let selector = r.string("discovery.namespace_selector");
    if !selector.is_empty()
        && let Err(e) = validate_selector(&selector)
    {
        r.problem("discovery.namespace_selector", e);
    }
    let namespaces = match (list.is_empty(), selector.is_empty()) {
        (true, true) => NamespaceScope::All,
        (false, true) => NamespaceScope::List(list),
        (true, false) => NamespaceScope::Selector(selector),
        (false, false) => {
            r.problem(
                "discovery.namespace_selector",
                "set either discovery.namespaces or discovery.namespace_selector, not both",
            );
            NamespaceScope::All
        }
    };
    let owner_id_annotation = r.annotation_key("discovery.owner_id_annotation");
    let owner_username_annotation = r.annotation_key("discovery.owner_username_annotation");
    let lease_name = r.name("discovery.lease_name", true).unwrap_or_default();
    let lease_namespace = match r.raw("discovery.lease_namespace") {
        Some(_) => r.name("discovery.lease_namespace", true),
        None => None,
    }
    .or_else(|| env("POD_NAMESPACE").filter(|s| !s.is_empty()))
    .unwrap_or_else(|| "default".to_string());
    let lease_duration = r.duration("discovery.lease_duration", Duration::from_secs(1));
    let identity = r
        .optional("discovery.identity")
        .or_else(|| env("POD_NAME").filter(|s| !s.is_empty()))
        .or_else(|| env("HOSTNAME").filter(|s| !s.is_empty()))
        .or_else(hostname)
        .unwrap_or_else(|| format!("workspace-gate-{}", uuid::Uuid::new_v4()));
    let resync_interval = r.duration("discovery.resync_interval", Duration::from_secs(1));

    let mode = r.one_of(
        "routing.mode",
        &[
            ("none", RoutingMode::None),
            ("ingress-nginx", RoutingMode::IngressNginx),
            ("traefik", RoutingMode::Traefik),
            ("gateway-api", RoutingMode::GatewayApi),
        ],
        RoutingMode::None,
    );
    let writes = mode != RoutingMode::None;
    let tls_secret = r.name("routing.tls_secret", false);
    let ingress_class = r.name("routing.ingress_class", false);
    let auth_keepalive = r.count("routing.auth_keepalive", 4096);
    let ssh_port = r.port("routing.ssh_port");
    let gate = GateService {
        name: r
            .name("routing.gate_service.name", writes)
            .unwrap_or_default(),
        namespace: r
            .name("routing.gate_service.namespace", writes)
            .unwrap_or_default(),
        http_port: r.port("routing.gate_service.http_port"),
        grpc_port: r.port("routing.gate_service.grpc_port"),
        https_port: r.optional_port("routing.gate_service.https_port"),
        cluster_domain: r.string("routing.gate_service.cluster_domain"),
    };
    if !crate::dns::is_dns_name(&gate.cluster_domain) {
        r.problem(
            "routing.gate_service.cluster_domain",
            format!("'{}' is not a DNS name", gate.cluster_domain),
        );
    }
    let traefik_ca_secret = r.name("routing.traefik_ca_secret", false);
    if traefik_ca_secret.is_some() && gate.https_port.is_none() {
        r.problem(
            "routing.traefik_ca_secret",
            "only used with routing.gate_service.https_port",
        );
    }
    let network_policy = network_policy(r, mode, &gate.namespace);
    let gw = mode == RoutingMode::GatewayApi;
    let gw_name = r.name("routing.gateway.name", gw);
    let gw_namespace = r.name("routing.gateway.namespace", gw);
    let section_name = r.optional("routing.gateway.section_name");
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
            ssh_port,
            gate,
            gateway,
            traefik_ca_secret,
            network_policy,
        },
    }
}

/// Labels of the gate's own pods as its chart sets them.
const DEFAULT_GATE_POD_LABELS: &str = "app.kubernetes.io/name=workspace-gate";

/// `discovery.network_policy.*`; empty keys take the mode's defaults.
fn network_policy(
    r: &mut Reader,
    mode: RoutingMode,
    gate_namespace: &str,
) -> Option<NetworkPolicyConfig> {
    let enabled = r.one_of(
        "discovery.network_policy.enabled",
        &[("true", true), ("false", false)],
        true,
    );
    let mut np = NetworkPolicyConfig::default_for(mode);
    if let Some(ns) = r.name("discovery.network_policy.controller_namespace", false) {
        np.controller_namespace = ns;
    }
    let labels = r.string("discovery.network_policy.controller_pod_labels");
    if !labels.is_empty() {
        match parse_labels(&labels) {
            Ok(l) => np.controller_pod_labels = l,
            Err(e) => r.problem("discovery.network_policy.controller_pod_labels", e),
        }
    }
    let gate_labels = r.string("discovery.network_policy.gate_pod_labels");
    let gate_labels = if gate_labels.is_empty() {
        DEFAULT_GATE_POD_LABELS.to_string()
    } else {
        gate_labels
    };
    match parse_labels(&gate_labels) {
        Ok(pod_labels) if !r.string("listen.ssh").is_empty() => {
            np.gate_peer = Some(PodPeer {
                namespace: gate_namespace.to_string(),
                pod_labels,
            })
        }
        Ok(_) => {}
        Err(e) => r.problem("discovery.network_policy.gate_pod_labels", e),
    }
    (enabled && mode != RoutingMode::None).then_some(np)
}

/// `k=v,k2=v2`: labels a pod must all carry; at least one.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for term in s.split(',').map(str::trim) {
        let (k, v) = term
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| format!("'{term}' is not a label (k=v)"))?;
        if !crate::dns::is_qualified_name(k) {
            return Err(format!("'{term}': '{k}' is not a label key"));
        }
        if !is_label_value(v) {
            return Err(format!("'{term}': '{v}' is not a label value"));
        }
        if labels.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label '{k}' is given twice"));
        }
    }
    Ok(labels)
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, starting and ending
/// with a letter or digit (empty values select nothing useful here).
fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Checks the equality-based selector forms the gate passes to the API
/// server: `k`, `!k`, `k=v`, `k==v`, `k!=v`, comma-separated.
fn validate_selector(sel: &str) -> Result<(), String> {
    for term in sel.split(',').map(str::trim) {
        let key = if let Some(k) = term.strip_prefix('!') {
            k
        } else if let Some((k, v)) = term
            .split_once("!=")
            .or_else(|| term.split_once("=="))
            .or_else(|| term.split_once('='))
        {
            if !v.is_empty() && !crate::dns::is_qualified_name(v.trim()) {
                return Err(format!("'{term}': '{v}' is not a label value"));
            }
            k
        } else {
            term
        };
        if !crate::dns::is_qualified_name(key.trim()) {
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
        use crate::dns::is_qualified_name;
        assert!(is_qualified_name("workspace-gate.dev/owner-id"));
        assert!(is_qualified_name("team"));
        assert!(!is_qualified_name("bad key"));
        assert!(!is_qualified_name("Example.com/x"));
    }

    /// `routing:` lines of a test, indented under the section.
    fn indent(lines: &str) -> String {
        lines.lines().map(|l| format!("  {l}\n")).collect()
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
        let mut r = Reader::from_text(&format!(
            "routing:\n  mode: traefik\n  gate_service:\n    name: gate\n    namespace: gate-ns\n{}",
            indent(extra)
        ));
        let out = read(&mut r, &|_| None);
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

    fn with_discovery(
        mode: &str,
        discovery: &str,
    ) -> Result<DiscoveryConfig, Vec<(String, String)>> {
        let mut r = Reader::from_text(&format!(
            "routing:\n  mode: {mode}\n  gate_service:\n    name: gate\n    namespace: gate-ns\n\
             \x20 gateway: {{name: eg, namespace: gw}}\ndiscovery:\n  network_policy:\n{}",
            indent(&indent(discovery))
        ));
        let out = read(&mut r, &|_| None);
        if r.problems.is_empty() {
            Ok(out)
        } else {
            Err(r.problems.into_iter().map(|p| (p.key, p.reason)).collect())
        }
    }

    #[test]
    fn the_gate_is_a_peer_of_the_policy_only_with_the_ssh_gateway() {
        let off = with_discovery("ingress-nginx", "{}\n").unwrap();
        assert_eq!(off.routing.network_policy.unwrap().gate_peer, None);
        let mut r = Reader::from_text(
            "listen:\n  ssh: 0.0.0.0:2222\nrouting:\n  mode: ingress-nginx\n  gate_service:\n    name: gate\n    namespace: gate-ns\n\
             discovery:\n  network_policy:\n    gate_pod_labels: app.kubernetes.io/name=workspace-gate,app.kubernetes.io/instance=wg\n",
        );
        let on = read(&mut r, &|_| None);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let peer = on
            .routing
            .network_policy
            .unwrap()
            .gate_peer
            .expect("gate peer");
        assert_eq!(peer.namespace, "gate-ns");
        assert_eq!(peer.pod_labels["app.kubernetes.io/instance"], "wg");
        let problems = with_discovery("traefik", "gate_pod_labels: nope\n").unwrap_err();
        assert_eq!(problems[0].0, "discovery.network_policy.gate_pod_labels");
    }

    #[test]
    fn network_policy_is_on_by_default_with_each_controllers_chart_labels() {
        for (mode, ns, name) in [
            ("ingress-nginx", "ingress-nginx", "ingress-nginx"),
            ("traefik", "traefik", "traefik"),
            ("gateway-api", "envoy-gateway-system", "envoy"),
        ] {
            let np = with_discovery(mode, "{}\n")
                .unwrap()
                .routing
                .network_policy
                .expect("on by default");
            assert_eq!(np.controller_namespace, ns);
            assert_eq!(np.controller_pod_labels["app.kubernetes.io/name"], name);
        }
        let none = with_discovery("none", "{}\n").unwrap();
        assert_eq!(
            none.routing.network_policy, None,
            "mode none writes nothing"
        );
    }

    #[test]
    fn network_policy_can_be_turned_off_and_pointed_elsewhere() {
        let off = with_discovery("traefik", "enabled: false\n").unwrap();
        assert_eq!(off.routing.network_policy, None);
        let np = with_discovery(
            "traefik",
            "controller_namespace: edge\ncontroller_pod_labels: 'app=proxy, tier=edge'\n",
        )
        .unwrap()
        .routing
        .network_policy
        .unwrap();
        assert_eq!(np.controller_namespace, "edge");
        assert_eq!(
            np.controller_pod_labels,
            BTreeMap::from([
                ("app".to_string(), "proxy".to_string()),
                ("tier".to_string(), "edge".to_string()),
            ])
        );
    }

    #[test]
    fn bad_network_policy_settings_are_reported_with_their_keys() {
        for (extra, key) in [
            ("enabled: maybe\n", "discovery.network_policy.enabled"),
            (
                "controller_namespace: Edge_NS\n",
                "discovery.network_policy.controller_namespace",
            ),
            (
                "controller_pod_labels: app\n",
                "discovery.network_policy.controller_pod_labels",
            ),
            (
                "controller_pod_labels: 'app=-bad'\n",
                "discovery.network_policy.controller_pod_labels",
            ),
            (
                "controller_pod_labels: 'a=b,a=c'\n",
                "discovery.network_policy.controller_pod_labels",
            ),
        ] {
            let problems = with_discovery("ingress-nginx", extra).unwrap_err();
            assert_eq!(problems.len(), 1, "{extra}: {problems:?}");
            assert_eq!(problems[0].0, key, "{extra}");
        }
    }
}
