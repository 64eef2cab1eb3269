//! NetworkPolicy: admits the ingress controller's pods to the workspace's
//! pods. GitLab's agent gives every workspace a policy that admits only
//! GitLab's own workspaces proxy; policies add up, so this one opens the
//! workspace's target ports to the controller that routes to them and to
//! nothing else. With the SSH gateway on, a second rule admits the gate's
//! own pods to the workspace's sshd port.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ObjectKind, RenderContext, RenderError, RoutingObject, object_name, owned_meta};
use crate::config::discovery::PodPeer;
use crate::workspaces::{TargetPort, Workspace};

/// The label every namespace carries with its own name (Kubernetes sets it
/// since 1.21), so a namespace is selected by name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The policy for one workspace, or none when the policy is turned off or
/// the Service selects no pods (an empty podSelector would open every pod
/// of the namespace).
pub(super) fn render(
    ctx: &RenderContext,
    ws: &Workspace,
) -> Result<Option<RoutingObject>, RenderError> {
    let Some(np) = &ctx.routing.network_policy else {
        return Ok(None);
    };
    let svc = ws
        .service
        .as_ref()
        .ok_or_else(|| RenderError::NoService(ws.id.clone()))?;
    let ssh = np
        .gate_peer
        .as_ref()
        .zip(ws.ssh.as_ref().and(svc.ssh_target_port.as_ref()));
    if svc.selector.is_empty() || (svc.target_ports.is_empty() && ssh.is_none()) {
        return Ok(None);
    }
    let name = object_name(&svc.name, "wg-allow");
    let mut ingress = Vec::with_capacity(2);
    if !svc.target_ports.is_empty() {
        ingress.push(rule(
            &PodPeer {
                namespace: np.controller_namespace.clone(),
                pod_labels: np.controller_pod_labels.clone(),
            },
            &svc.target_ports,
        ));
    }
    if let Some((gate, port)) = ssh {
        // The SSH gateway reaches the workspace's sshd itself.
        ingress.push(rule(gate, std::slice::from_ref(port)));
    }
    let policy = NetworkPolicy {
        metadata: owned_meta(ws, name.clone(), None)?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(svc.selector.clone()),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    };
    RoutingObject::new(ObjectKind::NetworkPolicy, &svc.namespace, &name, policy).map(Some)
}

/// Admits `peer`'s pods to `ports`.
fn rule(peer: &PodPeer, ports: &[TargetPort]) -> NetworkPolicyIngressRule {
    let ports = ports
        .iter()
        .map(|p| NetworkPolicyPort {
            protocol: Some("TCP".to_string()),
            port: Some(match p {
                TargetPort::Number(n) => IntOrString::Int(i32::from(*n)),
                TargetPort::Name(n) => IntOrString::String(n.clone()),
            }),
            ..Default::default()
        })
        .collect();
    let namespace_labels =
        BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), peer.namespace.clone())]);
    NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(namespace_labels),
                ..Default::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(peer.pod_labels.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(ports),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::discovery::{NetworkPolicyConfig, RoutingMode};
    use crate::discovery::render::tests::{ctx, ws};
    use crate::discovery::render::{MANAGED_BY_LABEL, workspace_objects};

    fn policy(ctx: &RenderContext, ws: &Workspace) -> serde_json::Value {
        render(ctx, ws).unwrap().expect("a policy").body
    }

    #[test]
    fn selects_the_workspace_pods_and_admits_the_controller_on_target_ports() {
        let p = policy(&ctx(RoutingMode::IngressNginx), &ws());
        assert_eq!(p["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(p["kind"], "NetworkPolicy");
        assert_eq!(p["metadata"]["name"], "ws-1-wg-allow");
        assert_eq!(p["metadata"]["namespace"], "team");
        assert_eq!(p["metadata"]["labels"][MANAGED_BY_LABEL], "workspace-gate");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let spec = &p["spec"];
        assert_eq!(spec["podSelector"]["matchLabels"]["workspace"], "ws-1");
        assert_eq!(spec["policyTypes"], serde_json::json!(["Ingress"]));
        let rule = &spec["ingress"][0];
        assert_eq!(
            rule["from"][0]["namespaceSelector"]["matchLabels"][NAMESPACE_NAME_LABEL],
            "ingress-nginx"
        );
        assert_eq!(
            rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            "ingress-nginx"
        );
        assert_eq!(
            rule["ports"],
            serde_json::json!([
                {"protocol": "TCP", "port": 60001},
                {"protocol": "TCP", "port": 3000},
            ])
        );
    }

    #[test]
    fn named_target_ports_stay_names() {
        let mut w = ws();
        w.service.as_mut().unwrap().target_ports = vec![TargetPort::Name("http".into())];
        let p = policy(&ctx(RoutingMode::Traefik), &w);
        assert_eq!(
            p["spec"]["ingress"][0]["ports"],
            serde_json::json!([{"protocol": "TCP", "port": "http"}])
        );
    }

    #[test]
    fn a_service_without_selector_gets_no_policy() {
        let mut w = ws();
        w.service.as_mut().unwrap().selector.clear();
        assert!(
            render(&ctx(RoutingMode::IngressNginx), &w)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn turned_off_writes_no_policy_in_any_mode() {
        for mode in [
            RoutingMode::IngressNginx,
            RoutingMode::Traefik,
            RoutingMode::GatewayApi,
        ] {
            let mut c = ctx(mode);
            c.routing.network_policy = None;
            let objs = workspace_objects(&c, &ws()).unwrap();
            assert!(objs.iter().all(|o| o.kind != ObjectKind::NetworkPolicy));
            let on = workspace_objects(&ctx(mode), &ws()).unwrap();
            assert_eq!(
                on.iter()
                    .filter(|o| o.kind == ObjectKind::NetworkPolicy)
                    .count(),
                1,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn configured_controller_pods_are_the_peer() {
        let mut c = ctx(RoutingMode::GatewayApi);
        c.routing.network_policy = Some(NetworkPolicyConfig {
            controller_namespace: "edge".into(),
            controller_pod_labels: BTreeMap::from([
                ("app".to_string(), "envoy".to_string()),
                ("tier".to_string(), "edge".to_string()),
            ]),
            gate_peer: None,
        });
        let p = policy(&c, &ws());
        let peer = &p["spec"]["ingress"][0]["from"][0];
        assert_eq!(
            peer["namespaceSelector"]["matchLabels"],
            serde_json::json!({NAMESPACE_NAME_LABEL: "edge"})
        );
        assert_eq!(
            peer["podSelector"]["matchLabels"],
            serde_json::json!({"app": "envoy", "tier": "edge"})
        );
    }

    #[test]
    fn the_gate_reaches_the_ssh_port_only_when_the_ssh_gateway_is_on() {
        let mut w = ws();
        w.ssh = Some(crate::workspaces::WorkspaceSsh {
            backend: "ws-1.team.svc.cluster.local:60022".into(),
            owner_keys: vec![],
        });
        w.service.as_mut().unwrap().ssh_target_port = Some(TargetPort::Number(60022));
        // SSH gateway off: the controller's rule only, sshd closed.
        let p = policy(&ctx(RoutingMode::IngressNginx), &w);
        assert_eq!(p["spec"]["ingress"].as_array().unwrap().len(), 1);
        assert!(!p.to_string().contains("60022"));

        let mut c = ctx(RoutingMode::IngressNginx);
        let np = c.routing.network_policy.as_mut().unwrap();
        np.gate_peer = Some(PodPeer {
            namespace: "gate".into(),
            pod_labels: BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "workspace-gate".to_string(),
            )]),
        });
        let p = policy(&c, &w);
        let rules = p["spec"]["ingress"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        // The controller still cannot reach sshd; the gate reaches only it.
        assert!(!rules[0].to_string().contains("60022"));
        assert_eq!(
            rules[1]["from"][0]["namespaceSelector"]["matchLabels"][NAMESPACE_NAME_LABEL],
            "gate"
        );
        assert_eq!(
            rules[1]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            "workspace-gate"
        );
        assert_eq!(
            rules[1]["ports"],
            serde_json::json!([{"protocol": "TCP", "port": 60022}])
        );
        // A workspace without an SSH port gets no gate rule.
        let p = policy(&c, &ws());
        assert_eq!(p["spec"]["ingress"].as_array().unwrap().len(), 1);
    }
}
