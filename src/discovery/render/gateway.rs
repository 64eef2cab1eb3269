//! Gateway API (Envoy Gateway): one HTTPRoute per workspace host, a
//! SecurityPolicy sending every request of those routes to the gate's
//! ext_authz gRPC port, and a ReferenceGrant in the gate's namespace that
//! lets SecurityPolicies of the workspace namespace name the gate's Service.
//!
//! One route per host, not per workspace: each host goes to a different
//! Service port and HTTPRoute rules cannot match on the host name. The
//! routes' backends are in their own namespace, so they need no grant.

use super::crds::{
    BackendObjectReference, ExtAuth, GrpcExtAuth, HttpBackendRef, HttpPathMatch, HttpRoute,
    HttpRouteMatch, HttpRouteRule, HttpRouteSpec, ParentReference, PolicyTargetReference,
    ReferenceGrant, ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo, SecurityPolicy,
    SecurityPolicySpec,
};
use super::{
    FOR_NAMESPACE_LABEL, ObjectKind, RenderContext, RenderError, RoutingObject, labels,
    object_name, owned_meta, routable_hosts, service_name,
};
use crate::workspaces::Workspace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

pub(super) fn render(
    ctx: &RenderContext,
    ws: &Workspace,
) -> Result<Vec<RoutingObject>, RenderError> {
    let svc = service_name(ws)?;
    let hosts = routable_hosts(ws)?;
    let gw = ctx.routing.gateway.as_ref().ok_or(RenderError::NoGateway)?;
    let gate = &ctx.routing.gate;
    let ns = &ws.namespace;

    let mut out = Vec::with_capacity(hosts.len() + 1);
    let mut targets = Vec::with_capacity(hosts.len());
    for (host, port) in &hosts {
        let name = object_name(svc, &format!("{port}-wg"));
        let route = HttpRoute {
            metadata: owned_meta(ws, name.clone(), None)?,
            spec: HttpRouteSpec {
                parent_refs: vec![ParentReference {
                    group: GATEWAY_GROUP.into(),
                    kind: "Gateway".into(),
                    name: gw.name.clone(),
                    namespace: gw.namespace.clone(),
                    section_name: gw.section_name.clone(),
                }],
                hostnames: vec![host.to_string()],
                rules: vec![HttpRouteRule {
                    matches: vec![HttpRouteMatch {
                        path: HttpPathMatch {
                            type_: "PathPrefix".into(),
                            value: "/".into(),
                        },
                    }],
                    backend_refs: vec![HttpBackendRef {
                        group: String::new(),
                        kind: "Service".into(),
                        name: svc.to_string(),
                        port: i32::from(*port),
                        weight: 1,
                    }],
                }],
            },
        };
        targets.push(PolicyTargetReference {
            group: GATEWAY_GROUP.into(),
            kind: "HTTPRoute".into(),
            name: name.clone(),
        });
        out.push(RoutingObject::new(ObjectKind::HttpRoute, ns, &name, route)?);
    }

    let policy_name = object_name(svc, "wg-auth");
    let policy = SecurityPolicy {
        metadata: owned_meta(ws, policy_name.clone(), None)?,
        spec: SecurityPolicySpec {
            target_refs: targets,
            ext_auth: ExtAuth {
                grpc: GrpcExtAuth {
                    backend_refs: vec![BackendObjectReference {
                        group: String::new(),
                        kind: "Service".into(),
                        name: gate.name.clone(),
                        namespace: gate.namespace.clone(),
                        port: i32::from(gate.grpc_port),
                    }],
                },
                headers_to_ext_auth: crate::core::request::CLIENT_HEADERS
                    .iter()
                    .map(|h| h.to_string())
                    .collect(),
                fail_open: false,
            },
        },
    };
    out.push(RoutingObject::new(
        ObjectKind::SecurityPolicy,
        ns,
        &policy_name,
        policy,
    )?);
    Ok(out)
}

/// The grant for `namespace`'s SecurityPolicies to reference the gate's
/// Service; none when the workspaces share the gate's namespace.
pub(super) fn reference_grant(
    ctx: &RenderContext,
    namespace: &str,
) -> Result<Vec<RoutingObject>, RenderError> {
    let gate = &ctx.routing.gate;
    if namespace == gate.namespace {
        return Ok(Vec::new());
    }
    let name = object_name("workspace-gate-from", namespace);
    let mut l = labels(None);
    l.insert(FOR_NAMESPACE_LABEL.to_string(), namespace.to_string());
    let grant = ReferenceGrant {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(gate.namespace.clone()),
            labels: Some(l),
            ..Default::default()
        },
        spec: ReferenceGrantSpec {
            from: vec![ReferenceGrantFrom {
                group: "gateway.envoyproxy.io".into(),
                kind: "SecurityPolicy".into(),
                namespace: namespace.to_string(),
            }],
            to: vec![ReferenceGrantTo {
                group: String::new(),
                kind: "Service".into(),
                name: gate.name.clone(),
            }],
        },
    };
    Ok(vec![RoutingObject::new(
        ObjectKind::ReferenceGrant,
        &gate.namespace,
        &name,
        grant,
    )?])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, ws};
    use super::*;
    use crate::config::discovery::RoutingMode;

    #[test]
    fn one_route_per_host_and_a_policy_over_all_of_them() {
        let objs = render(&ctx(RoutingMode::GatewayApi), &ws()).unwrap();
        assert_eq!(objs.len(), 3);
        let route = &objs[0].body;
        assert_eq!(route["spec"]["hostnames"][0], "60001-ws-1.workspaces.test");
        assert_eq!(route["spec"]["parentRefs"][0]["name"], "eg");
        assert_eq!(route["spec"]["parentRefs"][0]["sectionName"], "https");
        assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["port"], 60001);
        let policy = &objs[2].body;
        assert_eq!(policy["spec"]["targetRefs"].as_array().unwrap().len(), 2);
        let backend = &policy["spec"]["extAuth"]["grpc"]["backendRefs"][0];
        assert_eq!(backend["namespace"], "gate");
        assert_eq!(backend["port"], 9091);
        assert_eq!(policy["spec"]["extAuth"]["failOpen"], false);
        assert_eq!(
            policy["spec"]["extAuth"]["headersToExtAuth"],
            serde_json::json!([
                "cookie",
                "authorization",
                "accept",
                "upgrade",
                "sec-fetch-mode",
                "x-request-id"
            ])
        );
    }

    #[test]
    fn grant_lives_in_the_gate_namespace_and_names_the_policy_namespace() {
        let objs = reference_grant(&ctx(RoutingMode::GatewayApi), "team").unwrap();
        let g = &objs[0];
        assert_eq!(g.namespace, "gate");
        assert_eq!(g.body["spec"]["from"][0]["namespace"], "team");
        assert_eq!(g.body["spec"]["from"][0]["kind"], "SecurityPolicy");
        assert_eq!(g.body["spec"]["to"][0]["name"], "workspace-gate");
        assert!(
            reference_grant(&ctx(RoutingMode::GatewayApi), "gate")
                .unwrap()
                .is_empty()
        );
    }
}
