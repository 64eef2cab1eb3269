//! Routing objects: pure functions from a [`Workspace`] to the Kubernetes
//! objects that route and protect it, one file per routing mode.
//!
//! - `nginx.rs`: Ingress with auth annotations, reserved-path Ingress and an
//!   ExternalName Service pointing at the gate.
//! - `traefik.rs`: Ingress plus a forwardAuth Middleware.
//! - `gateway.rs`: HTTPRoutes, a SecurityPolicy, and per-namespace
//!   ReferenceGrants in the gate's namespace.
//! - `netpol.rs`: in every mode, a NetworkPolicy that admits the
//!   controller's pods to the workspace's pods.
//! - `crds.rs`: the custom resource types written above.

pub(crate) mod crds;
mod gateway;
mod netpol;
mod nginx;
mod traefik;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::{ApiResource, GroupVersionKind};
use sha2::{Digest, Sha256};

use crate::config::discovery::{RoutingConfig, RoutingMode};
use crate::workspaces::Workspace;

/// Field manager for server-side apply; also the `managed-by` label value.
pub const FIELD_MANAGER: &str = "workspace-gate";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Selects every object the gate wrote (sweeps list by it).
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=workspace-gate";
pub const WORKSPACE_ID_LABEL: &str = "workspace-gate.dev/workspace-id";
/// On ReferenceGrants: the workspace namespace the grant is for.
pub const FOR_NAMESPACE_LABEL: &str = "workspace-gate.dev/for-namespace";

/// Headers the gate sets (identity) or rewrites (Cookie without the gate's
/// cookies, Authorization removed) on the request to the workspace.
pub const AUTH_RESPONSE_HEADERS: [&str; 5] = [
    "X-Workspace-User",
    "X-Workspace-User-Id",
    "X-Workspace-Id",
    "Cookie",
    "Authorization",
];
/// The per-host pass cookie, set by the gate on a 2xx check (Traefik drops a
/// 2xx Set-Cookie unless the cookie is listed).
pub const PASS_COOKIE: &str = "__Host-workspace-gate-pass";

/// Every kind the gate may write, in any mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Ingress,
    Service,
    Middleware,
    HttpRoute,
    SecurityPolicy,
    ReferenceGrant,
    NetworkPolicy,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Ingress,
        ObjectKind::Service,
        ObjectKind::Middleware,
        ObjectKind::HttpRoute,
        ObjectKind::SecurityPolicy,
        ObjectKind::ReferenceGrant,
        ObjectKind::NetworkPolicy,
    ];

    /// (group, version, kind, plural)
    fn gvkp(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            ObjectKind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            ObjectKind::Service => ("", "v1", "Service", "services"),
            ObjectKind::Middleware => ("traefik.io", "v1alpha1", "Middleware", "middlewares"),
            ObjectKind::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
            ObjectKind::SecurityPolicy => (
                "gateway.envoyproxy.io",
                "v1alpha1",
                "SecurityPolicy",
                "securitypolicies",
            ),
            ObjectKind::ReferenceGrant => (
                "gateway.networking.k8s.io",
                "v1beta1",
                "ReferenceGrant",
                "referencegrants",
            ),
            ObjectKind::NetworkPolicy => (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
        }
    }

    pub fn kind(self) -> &'static str {
        self.gvkp().2
    }

    pub fn api_resource(self) -> ApiResource {
        let (g, v, k, p) = self.gvkp();
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p)
    }
}

/// One object to write: where it goes and its full body (apiVersion, kind,
/// metadata, spec), ready for server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingObject {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    pub body: serde_json::Value,
}

/// Identifies an object across renders and lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

impl RoutingObject {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    fn new(
        kind: ObjectKind,
        namespace: &str,
        name: &str,
        body: impl serde::Serialize,
    ) -> Result<Self, RenderError> {
        Ok(RoutingObject {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            body: serde_json::to_value(body).map_err(RenderError::Serialize)?,
        })
    }
}

/// Everything the renderers need besides the workspace.
#[derive(Debug, Clone)]
pub struct RenderContext {
    pub routing: RoutingConfig,
    /// `<public scheme>://$host[:port]/.workspace-gate/start` (nginx
    /// `auth-signin`; nginx expands `$host`): a login starts on the
    /// workspace host, which binds it to the browser before the auth host.
    pub signin_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("workspace {0} has no Service to own its objects")]
    NoService(String),
    #[error("workspace {0} has no host with a Service port")]
    NoPorts(String),
    #[error("gateway-api mode needs routing.gateway")]
    NoGateway,
    #[error("cannot serialize an object: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// Objects owned by one workspace (each carries an ownerReference to its
/// Service): the mode's routing objects and, unless turned off, the
/// NetworkPolicy admitting the controller. Empty in mode `none`.
pub fn workspace_objects(
    ctx: &RenderContext,
    ws: &Workspace,
) -> Result<Vec<RoutingObject>, RenderError> {
    let mut objs = match ctx.routing.mode {
        RoutingMode::None => return Ok(Vec::new()),
        RoutingMode::IngressNginx => nginx::render(ctx, ws)?,
        RoutingMode::Traefik => traefik::render(ctx, ws)?,
        RoutingMode::GatewayApi => gateway::render(ctx, ws)?,
    };
    objs.extend(netpol::render(ctx, ws)?);
    Ok(objs)
}

/// Objects shared by every workspace in `namespace` (ReferenceGrants in the
/// gate's namespace). They cannot carry an ownerReference (owners must be in
/// the same namespace), so the reconciler deletes them when the namespace's
/// last workspace goes.
pub fn namespace_objects(
    ctx: &RenderContext,
    namespace: &str,
) -> Result<Vec<RoutingObject>, RenderError> {
    match ctx.routing.mode {
        RoutingMode::GatewayApi => gateway::reference_grant(ctx, namespace),
        _ => Ok(Vec::new()),
    }
}

/// The longest name every kind accepts: a DNS label (Service names must
/// be one).
const MAX_NAME: usize = 63;

/// `<base>-<suffix>`, kept a valid DNS label of at most 63 characters: the
/// one rule for every generated name. A long base is cut and a hash of it
/// keeps names unique; when the suffix alone is too long (a ReferenceGrant
/// named after a namespace of 53 characters or more), both are cut and the
/// hash covers both. Never a leading or trailing `-`.
pub fn object_name(base: &str, suffix: &str) -> String {
    let full = format!("{base}-{suffix}");
    if full.len() <= MAX_NAME {
        return full;
    }
    // A hash and its two dashes, and at least one character of the base.
    const HASHED: usize = 8 + 2;
    if suffix.len() + HASHED < MAX_NAME {
        let hash = hex::encode(&Sha256::digest(base.as_bytes())[..4]);
        let cut = cut(base, MAX_NAME - suffix.len() - HASHED);
        return if cut.is_empty() {
            format!("{hash}-{suffix}")
        } else {
            format!("{cut}-{hash}-{suffix}")
        };
    }
    let hash = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    let base = cut(base, 20);
    let room = MAX_NAME - HASHED - base.len();
    let suffix = cut(suffix, room);
    [base, &hash, suffix]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-")
}

/// At most `max` bytes of `s`, never inside a character (names from a
/// hand-written Service file given to `render` are not validated by an
/// API server), without trailing dashes.
fn cut(s: &str, max: usize) -> &str {
    let mut keep = max.min(s.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    s[..keep].trim_end_matches('-')
}

/// Labels every object carries.
fn labels(ws_id: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(MANAGED_BY_LABEL.to_string(), FIELD_MANAGER.to_string());
    if let Some(id) = ws_id {
        l.insert(WORKSPACE_ID_LABEL.to_string(), id.to_string());
    }
    l
}

/// Metadata for an object owned by the workspace's Service. No
/// `blockOwnerDeletion`: setting it needs permission to update the owner's
/// finalizers, which the gate does not need otherwise.
fn owned_meta(
    ws: &Workspace,
    name: String,
    annotations: Option<BTreeMap<String, String>>,
) -> Result<ObjectMeta, RenderError> {
    let svc = ws
        .service
        .as_ref()
        .ok_or_else(|| RenderError::NoService(ws.id.clone()))?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(svc.namespace.clone()),
        labels: Some(labels(Some(&ws.id))),
        annotations,
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: svc.name.clone(),
            uid: svc.uid.clone(),
            ..Default::default()
        }]),
        ..Default::default()
    })
}

/// (host, service port) pairs; hosts without a port cannot be routed.
fn routable_hosts(ws: &Workspace) -> Result<Vec<(&str, u16)>, RenderError> {
    let v: Vec<(&str, u16)> = ws
        .hosts
        .iter()
        .filter_map(|h| h.service_port.map(|p| (h.host.as_str(), p)))
        .collect();
    if v.is_empty() {
        Err(RenderError::NoPorts(ws.id.clone()))
    } else {
        Ok(v)
    }
}

/// The Service the workspace's objects belong to.
fn service_name(ws: &Workspace) -> Result<&str, RenderError> {
    ws.service
        .as_ref()
        .map(|s| s.name.as_str())
        .ok_or_else(|| RenderError::NoService(ws.id.clone()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::discovery::{GateService, GatewayRef, NetworkPolicyConfig};
    use crate::workspaces::{HostPort, Owner, ServiceRef, TargetPort};

    pub(crate) fn ctx(mode: RoutingMode) -> RenderContext {
        RenderContext {
            routing: RoutingConfig {
                mode,
                tls_secret: Some("wildcard-tls".into()),
                ingress_class: Some("nginx".into()),
                auth_keepalive: 0,
                ssh_port: 60022,
                gate: GateService {
                    name: "workspace-gate".into(),
                    namespace: "gate".into(),
                    http_port: 8080,
                    grpc_port: 9091,
                    https_port: None,
                    cluster_domain: "cluster.local".into(),
                },
                gateway: Some(GatewayRef {
                    name: "eg".into(),
                    namespace: "gw".into(),
                    section_name: Some("https".into()),
                }),
                traefik_ca_secret: None,
                network_policy: Some(NetworkPolicyConfig::default_for(mode)),
            },
            signin_url: "https://$host/.workspace-gate/start".into(),
        }
    }

    pub(crate) fn ws() -> Workspace {
        Workspace {
            id: "42".into(),
            name: "ws-1".into(),
            namespace: "team".into(),
            owner: Some(Owner {
                id: "1001".into(),
                username: "alice".into(),
            }),
            hosts: vec![
                HostPort {
                    host: "60001-ws-1.workspaces.test".into(),
                    service_port: Some(60001),
                },
                HostPort {
                    host: "3000-ws-1.workspaces.test".into(),
                    service_port: Some(3000),
                },
            ],
            service: Some(ServiceRef {
                namespace: "team".into(),
                name: "ws-1".into(),
                uid: "uid-1".into(),
                selector: [("workspace".to_string(), "ws-1".to_string())].into(),
                target_ports: vec![TargetPort::Number(60001), TargetPort::Number(3000)],
                ssh_target_port: None,
            }),
            ssh: None,
        }
    }

    #[test]
    fn long_names_stay_dns_labels_and_distinct() {
        let a = object_name(&"a".repeat(70), "wg-reserved");
        let b = object_name(&format!("{}b", "a".repeat(69)), "wg-reserved");
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        assert!(a.ends_with("-wg-reserved"));
        assert_eq!(object_name("ws-1", "wg"), "ws-1-wg");
        // Multi-byte characters at the cut do not panic.
        let odd = object_name(&"é".repeat(40), "wg-reserved");
        assert!(odd.ends_with("-wg-reserved"));
    }

    /// A name the API server accepts for every kind the gate writes.
    fn is_label(n: &str) -> bool {
        (1..=63).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !n.starts_with('-')
            && !n.ends_with('-')
    }

    #[test]
    fn every_generated_name_is_a_label_at_the_limits() {
        // The ReferenceGrant is named after the namespace: 1 to 63 characters.
        let mut seen = std::collections::HashSet::new();
        for len in 1..=63 {
            for fill in ['a', 'b'] {
                let ns = format!("{}{fill}", "n".repeat(len - 1));
                let n = object_name("workspace-gate-from", &ns);
                assert!(is_label(&n), "namespace of {len}: {n:?}");
                assert!(seen.insert(n), "namespace of {len}: a name twice");
            }
        }
        // Service names of 1 to 63 characters with every suffix used.
        for len in 1..=63 {
            let svc = format!("s{}", "x".repeat(len - 1));
            for suffix in [
                "wg",
                "wg-gate",
                "wg-reserved",
                "wg-auth",
                "wg-allow",
                "60001-wg",
            ] {
                let n = object_name(&svc, suffix);
                assert!(is_label(&n), "service of {len}, {suffix}: {n:?}");
            }
        }
        // A base ending in dashes at the cut keeps no trailing dash.
        let n = object_name(&format!("{}-----x", "a".repeat(40)), "wg-reserved");
        assert!(is_label(&n), "{n:?}");
    }

    #[test]
    fn every_object_is_labelled_and_owned_by_the_service() {
        for mode in [
            RoutingMode::IngressNginx,
            RoutingMode::Traefik,
            RoutingMode::GatewayApi,
        ] {
            let objs = workspace_objects(&ctx(mode), &ws()).unwrap();
            assert!(!objs.is_empty());
            for o in objs {
                assert_eq!(
                    o.body["metadata"]["labels"][MANAGED_BY_LABEL],
                    FIELD_MANAGER
                );
                assert_eq!(o.body["metadata"]["ownerReferences"][0]["uid"], "uid-1");
                assert_eq!(o.body["metadata"]["name"], o.name.as_str());
                assert_eq!(o.body["kind"], o.kind.kind());
                assert_eq!(o.namespace, "team");
            }
        }
    }

    #[test]
    fn mode_none_renders_nothing() {
        assert!(
            workspace_objects(&ctx(RoutingMode::None), &ws())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn workspace_without_service_is_an_error() {
        let mut w = ws();
        w.service = None;
        assert!(workspace_objects(&ctx(RoutingMode::Traefik), &w).is_err());
    }
}
