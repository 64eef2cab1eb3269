//! Every routing object the gate renders validates against its schema:
//! core kinds (Ingress, Service) with `kubernetes-validate --strict` (the
//! official OpenAPI schemas), custom resources (HTTPRoute, ReferenceGrant,
//! SecurityPolicy, Middleware) against the CRD fixtures in
//! tests/fixtures/crds. Both tools come from the project venv
//! (`scripts/install-deps.sh`); a missing tool fails the test.

#[path = "support/discovery_env.rs"]
mod env;

use std::path::{Path, PathBuf};
use std::process::Command;

use env::*;
use workspace_gate::discovery::render::{namespace_objects, workspace_objects};
use workspace_gate::discovery::{ObjectKind, RoutingObject, workspace_from_service};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program from the project venv, or a failure saying how to get it.
fn venv_bin(name: &str) -> PathBuf {
    let p = root().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-deps.sh (it creates .venv and pip-installs tests/requirements.txt: kubernetes-validate, jsonschema, pyyaml)",
        p.display()
    );
    p
}

fn render_all(mode: &str, names: &[(&str, &str)]) -> Vec<RoutingObject> {
    render_with(&sections(mode, "a", ""), names)
}

/// Every object for `names` under the given `discovery`/`routing` YAML.
fn render_with(sections: &str, names: &[(&str, &str)]) -> Vec<RoutingObject> {
    let dir = TempDir::new("schema-cfg");
    let gate = gate_config(&dir, sections);
    let cfg = &gate.discovery;
    let ctx = cfg.render_context(&gate);
    let rules = cfg.service_rules(&gate);
    let mut out = Vec::new();
    for (i, (ns, name)) in names.iter().enumerate() {
        let mut svc = workspace_service(ns, name, i as u64 + 1, &[60001, 3000, 8080], "1001");
        svc.metadata.uid = Some(format!("00000000-0000-0000-0000-00000000000{i}"));
        let ws = workspace_from_service(&svc, &rules).unwrap();
        out.extend(workspace_objects(&ctx, &ws).unwrap());
        out.extend(namespace_objects(&ctx, ns).unwrap());
    }
    out
}

/// A short one, and one whose object names must be cut to 63 characters.
const NAMES: &[(&str, &str)] = &[
    ("team", "ws-1"),
    (
        "team-long",
        "workspace-1234567-89012345-abcdefghijklmnopqrstuvwxyz-01",
    ),
];

fn write_objects(dir: &Path, objs: &[&RoutingObject]) -> Vec<PathBuf> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| {
            let p = dir.join(format!("{i:02}-{}-{}.yaml", o.kind.kind(), o.name));
            std::fs::write(&p, serde_yaml::to_string(&o.body).unwrap()).unwrap();
            p
        })
        .collect()
}

fn run(mut cmd: Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn validate_core(files: &[PathBuf]) -> (bool, String) {
    let mut cmd = Command::new(venv_bin("kubernetes-validate"));
    cmd.arg("--strict").arg("--no-warn").args(files);
    run(cmd)
}

fn validate_crds(files: &[PathBuf]) -> (bool, String) {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg(root().join("tests/support/validate_crd.py"))
        .arg(root().join("tests/fixtures/crds"))
        .args(files);
    run(cmd)
}

fn is_core(k: ObjectKind) -> bool {
    matches!(
        k,
        ObjectKind::Ingress | ObjectKind::Service | ObjectKind::NetworkPolicy
    )
}

#[test]
fn every_rendered_object_validates_against_its_schema() {
    for mode in ["ingress-nginx", "traefik", "gateway-api"] {
        let objs = render_all(mode, NAMES);
        let dir = TempDir::new(&format!("schema-{mode}"));
        let core: Vec<&RoutingObject> = objs.iter().filter(|o| is_core(o.kind)).collect();
        let crds: Vec<&RoutingObject> = objs.iter().filter(|o| !is_core(o.kind)).collect();
        if !core.is_empty() {
            let files = write_objects(&dir.0, &core);
            let (ok, out) = validate_core(&files);
            assert!(ok, "{mode}: core objects do not validate:\n{out}");
        }
        if !crds.is_empty() {
            let files = write_objects(&dir.0, &crds);
            let (ok, out) = validate_crds(&files);
            assert!(ok, "{mode}: custom resources do not validate:\n{out}");
            assert_eq!(out.matches("PASS").count(), crds.len(), "{out}");
        }
    }
}

#[test]
fn the_https_middleware_with_a_ca_secret_validates() {
    let objs = render_with(
        "routing:\n  mode: traefik\n  traefik_ca_secret: gate-ca\n\
         \x20 gate_service: {name: workspace-gate, namespace: gate, https_port: 8443}\n",
        NAMES,
    );
    let mws: Vec<&RoutingObject> = objs
        .iter()
        .filter(|o| o.kind == ObjectKind::Middleware)
        .collect();
    assert_eq!(mws.len(), NAMES.len());
    for mw in &mws {
        assert_eq!(mw.body["spec"]["forwardAuth"]["tls"]["caSecret"], "gate-ca");
    }
    let dir = TempDir::new("schema-https");
    let (ok, out) = validate_crds(&write_objects(&dir.0, &mws));
    assert!(ok, "the https Middleware does not validate:\n{out}");
    assert_eq!(out.matches("PASS").count(), mws.len(), "{out}");
}

#[test]
fn every_kind_the_gate_writes_is_covered_by_a_schema_check() {
    let mut kinds: Vec<ObjectKind> = ["ingress-nginx", "traefik", "gateway-api"]
        .iter()
        .flat_map(|m| render_all(m, NAMES))
        .map(|o| o.kind)
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ObjectKind::ALL.to_vec());
}

#[test]
fn the_validators_reject_broken_objects() {
    let dir = TempDir::new("schema-neg");
    // Misspelt field in a custom resource.
    let mut objs = render_all("traefik", &[("team", "ws-1")]);
    let mw = objs
        .iter_mut()
        .find(|o| o.kind == ObjectKind::Middleware)
        .unwrap();
    mw.body["spec"]["forwardAuth"]["trustForwardHeaders"] = serde_json::json!(false);
    let files = write_objects(&dir.0, &[mw]);
    let (ok, out) = validate_crds(&files);
    assert!(!ok, "a misspelt Middleware field passed:\n{out}");
    assert!(out.contains("trustForwardHeaders"), "{out}");
    // Wrong type in an HTTPRoute.
    let mut objs = render_all("gateway-api", &[("team", "ws-1")]);
    let route = objs
        .iter_mut()
        .find(|o| o.kind == ObjectKind::HttpRoute)
        .unwrap();
    route.body["spec"]["rules"][0]["backendRefs"][0]["port"] = serde_json::json!(70000);
    let files = write_objects(&dir.0, &[route]);
    let (ok, out) = validate_crds(&files);
    assert!(
        !ok && out.contains("70000"),
        "an out-of-range port passed:\n{out}"
    );
    // Unknown field in a core kind.
    let mut objs = render_all("ingress-nginx", &[("team", "ws-1")]);
    objs[0].body["spec"]["rulez"] = serde_json::json!([]);
    let files = write_objects(&dir.0, &[&objs[0]]);
    let (ok, out) = validate_core(&files);
    assert!(
        !ok && out.contains("rulez"),
        "an unknown Ingress field passed:\n{out}"
    );
}
