//! Service -> Workspace: reads exactly what GitLab's agent writes on a
//! workspace Service, plus the gate's owner annotations. Pure, no I/O.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::workspaces::template::{self, TemplateError};
use crate::workspaces::{HostPort, Owner, ServiceRef, TargetPort, Workspace, WorkspaceSsh};

/// Label GitLab's agent puts on every workspace Service; the watch selects on it.
pub(crate) const AGENT_LABEL: &str = "agent.gitlab.com/id";
/// `{{.port}}-<workspace-name>.<dns_zone>`, rendered once per port.
pub(crate) const HOST_TEMPLATE_ANNOTATION: &str = "workspaces.gitlab.com/host-template";
/// Numeric GitLab workspace id.
pub(crate) const WORKSPACE_ID_ANNOTATION: &str = "workspaces.gitlab.com/id";

/// What a Service must satisfy to become a workspace.
#[derive(Debug, Clone)]
pub struct ServiceRules {
    pub owner_id_annotation: String,
    pub owner_username_annotation: String,
    /// Every host must be `<label>.<workspace_domain>`: a Service must not be
    /// able to claim the auth host or any host outside the workspace zone.
    pub workspace_domain: String,
    /// The Service port of the workspace's sshd (`routing.ssh_port`): it
    /// gets no HTTP host; the SSH gateway reaches it at
    /// `<name>.<namespace>.svc.<cluster_domain>`.
    pub ssh_port: u16,
    pub cluster_domain: String,
}

/// Why a labelled Service is not (or no longer) a usable workspace.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error("the Service has no {0}")]
    MissingMetadata(&'static str),
    #[error("annotation {0} is missing")]
    MissingAnnotation(&'static str),
    #[error("annotation {WORKSPACE_ID_ANNOTATION} '{0}' is not a numeric id")]
    BadId(String),
    #[error("the Service has no ports")]
    NoPorts,
    #[error("host template for port {port}: {source}")]
    Template {
        port: u16,
        #[source]
        source: TemplateError,
    },
    #[error("host {host} is not <label>.{domain}")]
    OutsideDomain { host: String, domain: String },
    #[error("port {0} is out of range")]
    BadPort(i32),
    #[error("'{0}' is not a Kubernetes name")]
    BadName(String),
    #[error("workspace {workspace}: annotation {annotation} is empty or whitespace")]
    BlankOwner {
        workspace: String,
        annotation: String,
    },
}

impl ServiceError {
    /// Short, stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ServiceError::MissingMetadata(_) => "missing_metadata",
            ServiceError::MissingAnnotation(_) => "missing_annotation",
            ServiceError::BadId(_) => "bad_id",
            ServiceError::NoPorts => "no_ports",
            ServiceError::Template { .. } => "bad_template",
            ServiceError::OutsideDomain { .. } => "outside_domain",
            ServiceError::BadPort(_) => "bad_port",
            ServiceError::BadName(_) => "bad_name",
            ServiceError::BlankOwner { .. } => "blank_owner",
        }
    }
}

/// Builds the workspace a Service describes.
///
/// Each Service port yields one host: the template is rendered with the
/// port's numeric target port (what GitLab's agent does), falling back to
/// the Service port when the target port is a name. The host routes to the
/// Service port.
pub fn workspace_from_service(
    svc: &Service,
    rules: &ServiceRules,
) -> Result<Workspace, ServiceError> {
    let meta = &svc.metadata;
    let name = meta
        .name
        .clone()
        .ok_or(ServiceError::MissingMetadata("name"))?;
    let namespace = meta
        .namespace
        .clone()
        .ok_or(ServiceError::MissingMetadata("namespace"))?;
    let uid = meta
        .uid
        .clone()
        .ok_or(ServiceError::MissingMetadata("uid"))?;
    // The API server guarantees these; a hand-written file (`render`) may not.
    for n in [&name, &namespace] {
        if !crate::dns::is_dns_label(n) {
            return Err(ServiceError::BadName(n.clone()));
        }
    }
    let annotations = meta.annotations.as_ref();
    let annotation = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let template_text = annotation(HOST_TEMPLATE_ANNOTATION)
        .ok_or(ServiceError::MissingAnnotation(HOST_TEMPLATE_ANNOTATION))?;
    let id = annotation(WORKSPACE_ID_ANNOTATION)
        .ok_or(ServiceError::MissingAnnotation(WORKSPACE_ID_ANNOTATION))?;
    if id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::BadId(id.to_string()));
    }
    // An owner annotation that is present must name someone: a blank one
    // would match a blank identity, so the Service is left out instead of
    // being read as "no owner known".
    for key in [&rules.owner_id_annotation, &rules.owner_username_annotation] {
        if annotations.and_then(|a| a.get(key)).is_some() && annotation(key).is_none() {
            return Err(ServiceError::BlankOwner {
                workspace: id.to_string(),
                annotation: key.clone(),
            });
        }
    }
    let owner = annotation(&rules.owner_id_annotation).map(|oid| Owner {
        id: oid.to_string(),
        username: annotation(&rules.owner_username_annotation)
            .unwrap_or_default()
            .to_string(),
    });

    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .filter(|p| !p.is_empty())
        .ok_or(ServiceError::NoPorts)?;
    let mut hosts: Vec<HostPort> = Vec::with_capacity(ports.len());
    let mut ssh = None;
    let mut target_ports: Vec<TargetPort> = Vec::with_capacity(ports.len());
    let mut ssh_target_port = None;
    for p in ports {
        let port = u16::try_from(p.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or(ServiceError::BadPort(p.port))?;
        if port == rules.ssh_port {
            // sshd speaks no HTTP: no host, no route, no controller access.
            ssh_target_port = Some(match &p.target_port {
                Some(IntOrString::String(n)) if !n.is_empty() => TargetPort::Name(n.clone()),
                Some(IntOrString::Int(t)) => u16::try_from(*t)
                    .ok()
                    .filter(|t| *t > 0)
                    .map(TargetPort::Number)
                    .ok_or(ServiceError::BadPort(*t))?,
                _ => TargetPort::Number(port),
            });
            ssh = Some(WorkspaceSsh {
                backend: format!("{name}.{namespace}.svc.{}:{port}", rules.cluster_domain),
                owner_keys: Vec::new(),
            });
            continue;
        }
        let template_port = match &p.target_port {
            Some(IntOrString::Int(t)) => u16::try_from(*t)
                .ok()
                .filter(|t| *t > 0)
                .ok_or(ServiceError::BadPort(*t))?,
            _ => port,
        };
        let target = match &p.target_port {
            Some(IntOrString::String(n)) if !n.is_empty() => TargetPort::Name(n.clone()),
            _ => TargetPort::Number(template_port),
        };
        if !target_ports.contains(&target) {
            target_ports.push(target);
        }
        let host = template::render(template_text, template_port)
            .map_err(|source| ServiceError::Template { port, source })?;
        if !is_workspace_host(&host, &rules.workspace_domain) {
            return Err(ServiceError::OutsideDomain {
                host,
                domain: rules.workspace_domain.clone(),
            });
        }
        // Two ports with the same target port render the same host; the
        // first Service port wins, as a host can route to only one port.
        if !hosts.iter().any(|h| h.host == host) {
            hosts.push(HostPort {
                host,
                service_port: Some(port),
            });
        }
    }
    Ok(Workspace {
        id: id.to_string(),
        name: name.clone(),
        namespace: namespace.clone(),
        owner,
        hosts,
        service: Some(ServiceRef {
            namespace,
            name,
            uid,
            selector: svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default(),
            target_ports,
            ssh_target_port,
        }),
        ssh,
    })
}

/// `<one label>.<domain>`
fn is_workspace_host(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ServiceRules {
        ServiceRules {
            owner_id_annotation: "workspace-gate.dev/owner-id".into(),
            owner_username_annotation: "workspace-gate.dev/owner-username".into(),
            workspace_domain: "workspaces.test".into(),
            ssh_port: 60022,
            cluster_domain: "cluster.local".into(),
        }
    }

    fn svc(annotations: serde_json::Value, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "ws-1", "namespace": "team", "uid": "u-1",
                "labels": {"agent.gitlab.com/id": "7"},
                "annotations": annotations,
            },
            "spec": {"ports": ports},
        }))
        .unwrap()
    }

    fn gitlab_annotations() -> serde_json::Value {
        serde_json::json!({
            "workspaces.gitlab.com/host-template": "{{.port}}-ws-1.workspaces.test",
            "workspaces.gitlab.com/id": "42",
            "workspace-gate.dev/owner-id": "1001",
            "workspace-gate.dev/owner-username": "alice",
        })
    }

    #[test]
    fn one_host_per_port_rendered_with_the_target_port() {
        let ws = workspace_from_service(
            &svc(
                gitlab_annotations(),
                serde_json::json!([
                    {"name": "a", "port": 8080, "targetPort": 60001},
                    {"name": "b", "port": 3000, "targetPort": "http"},
                ]),
            ),
            &rules(),
        )
        .unwrap();
        assert_eq!(ws.id, "42");
        assert_eq!(ws.hosts[0].host, "60001-ws-1.workspaces.test");
        assert_eq!(ws.hosts[0].service_port, Some(8080));
        assert_eq!(ws.hosts[1].host, "3000-ws-1.workspaces.test");
        assert_eq!(ws.owner.unwrap().username, "alice");
        assert_eq!(ws.service.unwrap().uid, "u-1");
    }

    #[test]
    fn selector_and_target_ports_are_kept_for_the_network_policy() {
        let mut s = svc(
            gitlab_annotations(),
            serde_json::json!([
                {"name": "a", "port": 8080, "targetPort": 60001},
                {"name": "b", "port": 3000, "targetPort": "http"},
                {"name": "c", "port": 4000},
            ]),
        );
        s.spec.as_mut().unwrap().selector =
            Some([("workspaces.gitlab.com/id".to_string(), "42".to_string())].into());
        let svc_ref = workspace_from_service(&s, &rules())
            .unwrap()
            .service
            .unwrap();
        assert_eq!(svc_ref.selector["workspaces.gitlab.com/id"], "42");
        assert_eq!(
            svc_ref.target_ports,
            vec![
                TargetPort::Number(60001),
                TargetPort::Name("http".into()),
                TargetPort::Number(4000),
            ]
        );
    }

    #[test]
    fn owner_is_absent_without_the_id_annotation() {
        let mut a = gitlab_annotations();
        a.as_object_mut()
            .unwrap()
            .remove("workspace-gate.dev/owner-id");
        let ws =
            workspace_from_service(&svc(a, serde_json::json!([{"port": 1}])), &rules()).unwrap();
        assert!(ws.owner.is_none());
    }

    #[test]
    fn host_outside_the_workspace_domain_is_refused() {
        let mut a = gitlab_annotations();
        a["workspaces.gitlab.com/host-template"] = "workspaces.test".into();
        let err = workspace_from_service(&svc(a, serde_json::json!([{"port": 1}])), &rules())
            .unwrap_err();
        assert!(matches!(err, ServiceError::OutsideDomain { .. }));
        let mut a = gitlab_annotations();
        a["workspaces.gitlab.com/host-template"] = "{{.port}}.a.workspaces.test".into();
        assert!(
            workspace_from_service(&svc(a, serde_json::json!([{"port": 1}])), &rules()).is_err()
        );
    }

    #[test]
    fn missing_or_bad_annotations_are_errors_not_panics() {
        let err = workspace_from_service(
            &svc(serde_json::json!({}), serde_json::json!([{"port": 1}])),
            &rules(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ServiceError::MissingAnnotation(HOST_TEMPLATE_ANNOTATION)
        );
        let mut a = gitlab_annotations();
        a["workspaces.gitlab.com/id"] = "gid://x".into();
        assert!(matches!(
            workspace_from_service(&svc(a, serde_json::json!([{"port": 1}])), &rules()),
            Err(ServiceError::BadId(_))
        ));
        assert_eq!(
            workspace_from_service(&svc(gitlab_annotations(), serde_json::json!([])), &rules()),
            Err(ServiceError::NoPorts)
        );
        assert!(matches!(
            workspace_from_service(
                &svc(gitlab_annotations(), serde_json::json!([{"port": 70000}])),
                &rules()
            ),
            Err(ServiceError::BadPort(70000))
        ));
    }

    #[test]
    fn blank_owner_annotation_is_refused_naming_it() {
        for (key, value) in [
            ("workspace-gate.dev/owner-id", ""),
            ("workspace-gate.dev/owner-id", "   "),
            ("workspace-gate.dev/owner-id", "\t\n"),
            ("workspace-gate.dev/owner-username", ""),
            ("workspace-gate.dev/owner-username", " "),
        ] {
            let mut a = gitlab_annotations();
            a[key] = value.into();
            let err = workspace_from_service(&svc(a, serde_json::json!([{"port": 1}])), &rules())
                .unwrap_err();
            assert_eq!(
                err,
                ServiceError::BlankOwner {
                    workspace: "42".into(),
                    annotation: key.into()
                },
                "{key}={value:?}"
            );
            assert!(
                err.to_string().contains(key) && err.to_string().contains("42"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_ssh_port_gets_no_http_host_and_names_the_sshd() {
        let ws = workspace_from_service(
            &svc(
                gitlab_annotations(),
                serde_json::json!([
                    {"name": "ide", "port": 60001, "targetPort": 60001},
                    {"name": "ssh", "port": 60022, "targetPort": "sshd"},
                ]),
            ),
            &rules(),
        )
        .unwrap();
        let hosts: Vec<&str> = ws.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(hosts, ["60001-ws-1.workspaces.test"]);
        let ssh = ws.ssh.expect("an SSH side");
        assert_eq!(ssh.backend, "ws-1.team.svc.cluster.local:60022");
        let svc_ref = ws.service.unwrap();
        assert_eq!(svc_ref.target_ports, vec![TargetPort::Number(60001)]);
        assert_eq!(
            svc_ref.ssh_target_port,
            Some(TargetPort::Name("sshd".into()))
        );
    }
}
