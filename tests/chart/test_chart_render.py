"""The chart lints and renders with the real Helm library (helm-python-sdk),
and every rendered object validates: built-in kinds against the official
Kubernetes schemas (kubernetes-validate, strict: unknown fields fail), custom
kinds (HTTPRoute, ServiceMonitor) against the CRD fixtures in fixtures/crds."""

import base64

import pytest
import yaml

import chart_support as cs
from scenarios import EXISTING_SECRETS, SCENARIOS

CRD_VALIDATORS = cs.load_crd_validators()


def rendered_objects(scenario):
    values, _ = SCENARIOS[scenario]
    return cs.objects(cs.render(values))


def config_of(objs):
    return cs.gate_config(objs)


# --- lint and render -----------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_chart_lints_without_warnings(scenario):
    values, _ = SCENARIOS[scenario]
    report = cs.helm.lint(str(cs.CHART_DIR), values, strict=True, namespace=cs.NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("kube_version", cs.KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_object_validates(scenario, kube_version):
    objs = rendered_objects(scenario)
    assert objs, "nothing rendered"
    failures = []
    for obj in objs:
        try:
            cs.validate_object(obj, CRD_VALIDATORS, kube_version)
        except Exception as e:  # collect every failure, then report
            failures.append(f"{obj['__template__']}: {obj['kind']}/{obj['metadata'].get('name')}: {e}")
    assert not failures, "\n".join(failures)


def test_crd_fixtures_are_valid_custom_resource_definitions():
    for f in sorted(cs.CRD_DIR.glob("*.yaml")):
        cs.kubernetes_validate.validate(yaml.safe_load(f.read_text()), cs.KUBE_VERSIONS[-1], strict=True)
    kinds = {kind for (_, kind) in CRD_VALIDATORS}
    assert kinds == {"HTTPRoute", "ServiceMonitor"}


def test_crd_fixtures_catch_a_broken_object():
    """The CRD validation is not a no-op: a wrong path type and a misspelt
    field are both reported."""
    route = cs.one(rendered_objects("gateway-api-created-secrets"), "HTTPRoute")
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    route["spec"]["hostname"] = ["x"]
    with pytest.raises(AssertionError, match=r"'hostname' was unexpected.*'Prefix' is not one of"):
        cs.validate_object(route, CRD_VALIDATORS, cs.KUBE_VERSIONS[-1])


def test_official_schema_validation_catches_a_broken_object():
    dep = cs.one(rendered_objects("defaults"), "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(Exception, match="readOnlyRootFileSystem"):
        cs.validate_object(dep, CRD_VALIDATORS, cs.KUBE_VERSIONS[-1])


def test_every_template_kind_is_covered_by_some_scenario():
    """Each template renders something in at least one scenario, so the
    validation above sees every kind the chart can produce."""
    seen = set()
    for scenario in SCENARIOS:
        seen |= {o["__template__"] for o in rendered_objects(scenario)}
    templates = {
        f"workspace-gate/templates/{p.name}"
        for p in (cs.CHART_DIR / "templates").glob("*.yaml")
    }
    assert templates - seen == set()


# --- the Deployment -----------------------------------------------------------


def test_deployment_runs_hardened_with_probes_and_graceful_shutdown():
    objs = rendered_objects("defaults")
    dep = cs.one(objs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # Service links would inject WORKSPACE_GATE_* variables into the gate's
    # configuration namespace when the release is named workspace-gate.
    assert pod["enableServiceLinks"] is False
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "grpc": 9091, "admin": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    drain = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < drain < pod["terminationGracePeriodSeconds"]
    assert c["args"] == ["serve", "--config", "/etc/workspace-gate/config.yaml"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # Only /tmp is writable, and it is a small in-memory volume.
    writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"]


def test_config_change_rolls_the_pods():
    a = cs.one(rendered_objects("ingress-nginx-created-secrets"), "Deployment")
    values, _ = SCENARIOS["ingress-nginx-created-secrets"]
    b = cs.one(cs.objects(cs.render(cs.deep_merge(values, {"session": {"passTtl": "1h"}}))), "Deployment")
    ann = lambda d: d["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
    assert ann(a)["checksum/config"] != ann(b)["checksum/config"]


def test_autoscaler_replaces_fixed_replicas():
    objs = rendered_objects("everything-on")
    assert "replicas" not in cs.one(objs, "Deployment")["spec"]
    hpa = cs.one(objs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    pdb = cs.one(objs, "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == "50%" and "maxUnavailable" not in pdb


def test_services_expose_http_grpc_and_a_separate_admin_port():
    objs = rendered_objects("defaults")
    main = cs.one(objs, "Service", "gate-workspace-gate")
    admin = cs.one(objs, "Service", "gate-workspace-gate-admin")
    assert {p["name"]: p["port"] for p in main["spec"]["ports"]} == {"http": 8080, "grpc": 9091}
    assert {p["name"]: p["port"] for p in admin["spec"]["ports"]} == {"admin": 9090}
    grpc = next(p for p in main["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["appProtocol"] == "kubernetes.io/h2c"


# --- HTTPS listener for the checks (checkTls) -----------------------------------


def test_check_tls_is_off_until_a_secret_is_named():
    """Without `checkTls.secretName` its other values change nothing: every
    manifest is the same as with the defaults."""
    values, _ = SCENARIOS["traefik-existing-secrets"]
    off = cs.render(values)
    ignored = cs.render(cs.deep_merge(values, {"checkTls": {"port": 9443}}))
    assert ignored == off
    objs = cs.objects(off)
    c = cs.one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "https-check" not in {p["name"] for p in c["ports"]}
    assert "check-tls" not in {m["name"] for m in c["volumeMounts"]}
    config = config_of(objs)
    assert "https" not in config["listen"] and "tls" not in config
    assert "https_port" not in config["routing"]["gate_service"]
    assert "traefik_ca_secret" not in config["routing"]


def test_check_tls_serves_https_from_the_mounted_secret():
    objs = rendered_objects("traefik-check-tls")
    pod = cs.one(objs, "Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["https-check"] == 8443
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "check-tls"]
    # A directory mount (no subPath), so a renewed certificate reaches the pod.
    assert mount == {"name": "check-tls", "mountPath": "/etc/workspace-gate/check-tls", "readOnly": True}
    (vol,) = [v for v in pod["volumes"] if v["name"] == "check-tls"]
    assert vol["secret"]["secretName"] == "gate-check-tls"
    assert [i["key"] for i in vol["secret"]["items"]] == ["tls.crt", "tls.key"]
    config = config_of(objs)
    assert config["listen"]["https"] == "0.0.0.0:8443"
    assert config["tls"] == {
        "cert_file": "/etc/workspace-gate/check-tls/tls.crt",
        "key_file": "/etc/workspace-gate/check-tls/tls.key",
    }
    assert config["routing"]["gate_service"]["https_port"] == 8443
    assert config["routing"]["traefik_ca_secret"] == "gate-ca"
    svc = cs.one(objs, "Service", "gate-workspace-gate")
    (https,) = [p for p in svc["spec"]["ports"] if p["name"] == "https-check"]
    assert (https["port"], https["targetPort"], https["appProtocol"]) == (8443, "https-check", "https")
    # Opened to the same peers as the HTTP port, in the same rule.
    (checks,) = [r for r in cs.one(objs, "NetworkPolicy")["spec"]["ingress"] if {"port": 8080, "protocol": "TCP"} in r["ports"]]
    assert {"port": 8443, "protocol": "TCP"} in checks["ports"]
    assert checks["from"] == SCENARIOS["traefik-check-tls"][0]["networkPolicy"]["httpFrom"]


def test_check_tls_port_and_ca_secret_follow_the_values():
    values, _ = SCENARIOS["traefik-check-tls"]
    objs = cs.objects(cs.render(cs.deep_merge(values, {"checkTls": {"port": 9443, "caSecret": ""}})))
    config = config_of(objs)
    assert config["listen"]["https"] == "0.0.0.0:9443"
    assert config["routing"]["gate_service"]["https_port"] == 9443
    assert "traefik_ca_secret" not in config["routing"], "empty: Traefik's system roots"
    svc = cs.one(objs, "Service", "gate-workspace-gate")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["https-check"] == 9443
    c = cs.one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["https-check"] == 9443


def test_check_tls_in_none_mode_serves_https_without_routing_keys():
    """Mode none renders no gate_service, so neither routing key: a CA Secret
    without `https_port` would be refused by the gate."""
    values, _ = SCENARIOS["none-generated-key"]
    config = config_of(cs.objects(cs.render(cs.deep_merge(values, {"checkTls": {"secretName": "gate-check-tls", "caSecret": "gate-ca"}}))))
    assert config["listen"]["https"] == "0.0.0.0:8443"
    assert config["routing"] == {"mode": "none"}


def test_notes_explain_the_https_checks():
    text = cs.notes(cs.render(SCENARIOS["traefik-check-tls"][0]))
    assert "https://gate-workspace-gate.workspace-gate.svc.cluster.local:8443/check/traefik" in text
    assert "Secret gate-ca holding its CA" in text
    assert "WARNINGS" not in text
    values, _ = SCENARIOS["ingress-nginx-existing-secrets"]
    nginx = cs.notes(cs.render(cs.deep_merge(values, {"checkTls": {"secretName": "gate-check-tls"}})))
    assert "checkTls: the HTTPS listener is only used by Traefik" in nginx


# --- configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario, transfer",
    [
        ("ingress-nginx-created-secrets", "fragment"),
        ("traefik-created-secrets", "fragment"),
        ("gateway-api-created-secrets", "fragment"),
        ("none-generated-key", "fragment"),
    ],
)
def test_config_follows_the_routing_mode(scenario, transfer):
    config = config_of(rendered_objects(scenario))
    mode = SCENARIOS[scenario][0]["routing"]["mode"]
    assert config["routing"]["mode"] == mode
    assert config["session"]["transfer"] == transfer
    assert config["workspaces"] == {"source": "kubernetes"}
    assert config["discovery"]["lease_namespace"] == cs.NAMESPACE
    if mode != "none":
        assert config["routing"]["gate_service"] == {
            "name": "gate-workspace-gate",
            "namespace": cs.NAMESPACE,
            "http_port": 8080,
            "grpc_port": 9091,
            "cluster_domain": "cluster.local",
        }
    if mode == "gateway-api":
        assert config["routing"]["gateway"] == {
            "name": "eg",
            "namespace": "envoy-gateway-system",
            "section_name": "https-workspaces",
        }
        assert "ingress_class" not in config["routing"]
    if mode in ("ingress-nginx", "traefik"):
        assert config["routing"]["ingress_class"] == {"ingress-nginx": "nginx", "traefik": "traefik"}[mode]


def test_auth_keepalive_reaches_the_config_in_ingress_nginx_mode_only():
    values, _ = SCENARIOS["ingress-nginx-created-secrets"]
    assert "auth_keepalive" not in config_of(rendered_objects("ingress-nginx-created-secrets"))["routing"]
    on = cs.deep_merge(values, {"routing": {"authKeepalive": 64}})
    assert config_of(cs.objects(cs.render(on)))["routing"]["auth_keepalive"] == 64
    traefik, _ = SCENARIOS["traefik-created-secrets"]
    off = cs.deep_merge(traefik, {"routing": {"authKeepalive": 64}})
    assert "auth_keepalive" not in config_of(cs.objects(cs.render(off)))["routing"]


def test_config_carries_every_discovery_setting():
    config = config_of(rendered_objects("namespaced-rbac"))
    assert config["discovery"] == {
        "namespaces": ["team-a-workspaces", "team-b-workspaces"],
        "owner_id_annotation": "example.test/owner-id",
        "owner_username_annotation": "example.test/owner",
        "lease_name": "gate-lease",
        "lease_namespace": cs.NAMESPACE,
        "lease_duration": "20s",
        "resync_interval": "5m",
        "network_policy": {"enabled": True},
    }
    selector = config_of(rendered_objects("namespace-selector"))["discovery"]
    assert selector["namespace_selector"] == "gitlab-workspaces=true,team!=legacy"
    assert "namespaces" not in selector
    assert config["authorization"]["mode"] == "owner-annotation"


def test_auth_host_defaults_to_the_workspace_domain_and_extra_config_merges():
    assert config_of(rendered_objects("defaults"))["auth_host"] == "workspaces.example.com"
    config = config_of(rendered_objects("everything-on"))
    assert config["auth_host"] == "login.workspaces-auth.example.test"
    assert config["public_port"] == 8443
    assert "public_port" not in config_of(rendered_objects("defaults"))
    assert config["session"] == {"pass_ttl": "8h", "login_ttl": "3d", "transfer": "fragment", "transfer_ttl": "30s"}


# --- secrets ------------------------------------------------------------------


def test_existing_secrets_are_mounted_and_not_created():
    objs = rendered_objects("ingress-nginx-existing-secrets")
    assert cs.find(objs, "Secret") == []
    pod = cs.one(objs, "Deployment")["spec"]["template"]["spec"]
    vols = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert vols["oidc"]["secretName"] == "gitlab-oauth"
    assert vols["keys"]["secretName"] == "gate-keys"
    assert [i["key"] for i in vols["keys"]["items"]] == list(EXISTING_SECRETS["gate-keys"])
    # Signing order is the order given: the first entry signs.
    assert config_of(objs)["keys"]["files"] == [
        "/etc/workspace-gate/keys/key-2026-11",
        "/etc/workspace-gate/keys/key-2026-05",
    ]


def test_created_secrets_hold_the_values_in_signing_order():
    objs = rendered_objects("ingress-nginx-created-secrets")
    keys = cs.one(objs, "Secret", "gate-workspace-gate-keys")["data"]
    assert base64.b64decode(keys["key-0"]).decode() == cs.KEY_B
    assert base64.b64decode(keys["key-1"]).decode() == cs.KEY_A
    oidc = cs.one(objs, "Secret", "gate-workspace-gate-oidc")["data"]
    assert base64.b64decode(oidc["client-secret"]).decode().startswith("gloas-")


def test_generated_key_is_32_random_bytes_and_kept():
    objs = rendered_objects("defaults")
    secret = cs.one(objs, "Secret", "gate-workspace-gate-keys")
    key_text = base64.b64decode(secret["data"]["key-0"]).decode()
    assert len(base64.b64decode(key_text)) == 32
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    again = cs.one(rendered_objects("defaults"), "Secret", "gate-workspace-gate-keys")
    assert again["data"]["key-0"] != secret["data"]["key-0"], "keys must be random"


# --- RBAC ---------------------------------------------------------------------


def rules_by_resource(role):
    """resource (group/resource, or a `/name` suffix for resourceNames) -> verbs."""
    out = {}
    for r in role["rules"]:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for name in r.get("resourceNames", [None]):
                    key = (f"{g}/{res}" if g else res) + (f"/{name}" if name else "")
                    out.setdefault(key, set()).update(r["verbs"])
    return out


# What discovery does with routing objects: server-side apply (patch, or
# create when new), the sweep's list, and delete (deploy/rbac.yaml).
WRITE = {"list", "create", "patch", "delete"}
WATCH = {"list", "watch"}


# The NetworkPolicy next to each workspace (discovery.networkPolicy.enabled).
NETPOL = "networking.k8s.io/networkpolicies"


@pytest.mark.parametrize(
    "scenario, expected",
    [
        (
            "ingress-nginx-created-secrets",
            {"services": WATCH | {"create", "patch", "delete"}, "networking.k8s.io/ingresses": WRITE, NETPOL: WRITE},
        ),
        (
            "traefik-created-secrets",
            {"services": WATCH, "networking.k8s.io/ingresses": WRITE, "traefik.io/middlewares": WRITE, NETPOL: WRITE},
        ),
        (
            "namespace-selector",
            {
                "services": WATCH,
                "namespaces": WATCH,
                "networking.k8s.io/ingresses": WRITE,
                "traefik.io/middlewares": WRITE,
                NETPOL: WRITE,
            },
        ),
        (
            "gateway-api-created-secrets",
            {
                "services": WATCH,
                "gateway.networking.k8s.io/httproutes": WRITE,
                "gateway.envoyproxy.io/securitypolicies": WRITE,
                NETPOL: WRITE,
            },
        ),
        ("none-generated-key", {"services": WATCH}),
    ],
)
def test_cluster_rbac_grants_only_what_the_mode_uses(scenario, expected):
    objs = rendered_objects(scenario)
    role = cs.one(objs, "ClusterRole")
    assert rules_by_resource(role) == expected
    binding = cs.one(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gate-workspace-gate", "namespace": cs.NAMESPACE}]
    # In the gate's namespace: its own Lease, and the ReferenceGrants of
    # gateway-api mode. Mode none writes nothing and elects no leader.
    if "none" in scenario:
        assert cs.find(objs, "Role") == []
        return
    leader = cs.one(objs, "Role", "gate-workspace-gate-leader")
    assert leader["metadata"]["namespace"] == cs.NAMESPACE
    own = {
        "coordination.k8s.io/leases": {"create"},
        "coordination.k8s.io/leases/gate-workspace-gate-leader": {"get", "update"},
    }
    if "gateway-api" in scenario:
        own["gateway.networking.k8s.io/referencegrants"] = WRITE
    assert rules_by_resource(leader) == own


def test_namespaced_rbac_stays_in_the_listed_namespaces():
    objs = rendered_objects("namespaced-rbac")
    roles = [r for r in cs.find(objs, "Role") if r["metadata"]["name"] == "gate-workspace-gate"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a-workspaces", "team-b-workspaces"]
    assert len([b for b in cs.find(objs, "RoleBinding") if b["metadata"]["name"] == "gate-workspace-gate"]) == 2
    assert rules_by_resource(roles[0]) == {
        "services": WATCH | {"create", "patch", "delete"},
        "networking.k8s.io/ingresses": WRITE,
        NETPOL: WRITE,
    }
    assert cs.find(objs, "ClusterRole") == [] and cs.find(objs, "ClusterRoleBinding") == []
    leader = cs.one(objs, "Role", "gate-workspace-gate-leader")
    assert "coordination.k8s.io/leases/gate-lease" in rules_by_resource(leader)


# --- exposure of the auth host ------------------------------------------------


@pytest.mark.parametrize(
    "scenario, ingress_class",
    [
        ("ingress-nginx-created-secrets", "nginx"),
        ("traefik-created-secrets", "traefik"),
        ("traefik-existing-secrets", "traefik-internal"),
    ],
)
def test_auth_host_ingress_publishes_only_the_login_paths(scenario, ingress_class):
    objs = rendered_objects(scenario)
    assert cs.find(objs, "HTTPRoute") == []
    ing = cs.one(objs, "Ingress")
    assert ing["spec"]["ingressClassName"] == ingress_class
    assert ing["spec"]["tls"] == [{"hosts": ["workspaces.example.test"], "secretName": "workspace-gate-tls"}]
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "workspaces.example.test"
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/auth", "Prefix")]


def test_gateway_mode_routes_the_auth_host_with_an_httproute():
    objs = rendered_objects("gateway-api-created-secrets")
    assert cs.find(objs, "Ingress") == []
    route = cs.one(objs, "HTTPRoute")
    assert route["spec"]["parentRefs"][0]["name"] == "eg"
    assert route["spec"]["parentRefs"][0]["namespace"] == "envoy-gateway-system"
    # Not the workspace listener (routing.gateway.sectionName): its wildcard
    # hostname does not match the auth host.
    assert "sectionName" not in route["spec"]["parentRefs"][0]
    values, _ = SCENARIOS["gateway-api-created-secrets"]
    pinned = cs.one(cs.objects(cs.render(cs.deep_merge(values, {"authRoute": {"sectionName": "https-auth"}}))), "HTTPRoute")
    assert pinned["spec"]["parentRefs"][0]["sectionName"] == "https-auth"
    assert route["spec"]["hostnames"] == ["workspaces.example.test"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["port"] == 8080


def test_none_mode_exposes_nothing_unless_asked():
    assert cs.find(rendered_objects("none-generated-key"), "Ingress") == []
    values, _ = SCENARIOS["none-generated-key"]
    objs = cs.objects(cs.render(cs.deep_merge(values, {"authIngress": {"className": "haproxy"}})))
    assert cs.one(objs, "Ingress")["spec"]["ingressClassName"] == "haproxy"


# --- NOTES.txt ----------------------------------------------------------------


def test_notes_tell_the_next_steps():
    values, _ = SCENARIOS["ingress-nginx-created-secrets"]
    text = cs.notes(cs.render(values))
    assert "https://workspaces.example.test/auth/callback" in text
    assert "*.workspaces.example.test" in text
    assert 'dns_zone: "workspaces.example.test"' in text
    assert "WARNINGS" not in text
    on_8443 = cs.notes(cs.render(SCENARIOS["everything-on"][0]))
    assert "https://login.workspaces-auth.example.test:8443/auth/callback" in on_8443
    defaults = cs.notes(cs.render({}))
    assert "oidc.clientId is empty" in defaults
    assert "workspaceDomain is still the example value" in defaults


def test_chart_packages(tmp_path):
    archive = cs.helm.package(str(cs.CHART_DIR), destination=str(tmp_path))
    with cs.helm.Chart.load(archive) as packaged:
        assert packaged.name == "workspace-gate"
        assert packaged.schema is not None
        names = {f["name"] for f in packaged.files}
        assert "README.md" in names
