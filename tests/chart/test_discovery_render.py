"""The chart and discovery agree: the real binary's `workspace-gate render`
turns the chart's rendered configuration and a workspace Service (as GitLab's
agent creates it) into routing objects, and

- those objects point at the Services the chart creates (name, namespace,
  port, gRPC protocol), and
- the RBAC the chart creates lets the gate's ServiceAccount write every one
  of them where it lives, and hold its Lease.

Fails (never skips) when the binary is missing or has no `render` command."""

import pathlib

import pytest
import yaml

import chart_support as cs
from scenarios import EXISTING_CONFIG_MAPS, EXISTING_SECRETS, SCENARIOS

WORKSPACE_NS = "gl-rd-ns-4-1-abcdef"

# A workspace Service as GitLab's agent writes it.
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "workspace-4-1-abcdef",
        "namespace": WORKSPACE_NS,
        "uid": "5b0c4a8e-1d2f-4c3b-9a7e-0f1e2d3c4b5a",
        "labels": {"agent.gitlab.com/id": "4"},
        "annotations": {
            "workspaces.gitlab.com/host-template": "{{.port}}-workspace-4-1-abcdef.workspaces.example.test",
            "workspaces.gitlab.com/id": "17",
        },
    },
    "spec": {
        "selector": {"app": "workspace"},
        "ports": [
            {"name": "http-60001", "port": 60001, "targetPort": 60001},
            {"name": "http-3000", "port": 3000, "targetPort": 3000},
        ],
    },
}

# Scenario -> the values again, with the workspace namespace watched where the
# scenario lists namespaces.
MODES = {
    "ingress-nginx-created-secrets": "ingress-nginx",
    "traefik-existing-secrets": "traefik",
    "gateway-api-existing-secrets": "gateway-api",
    "everything-on": "gateway-api",
    "namespaced-rbac": "ingress-nginx",
    "namespace-selector": "traefik",
    "traefik-check-tls": "traefik",
}

SA = ("ServiceAccount", "gate-workspace-gate", cs.NAMESPACE)

# kind -> (API group, resource)
RESOURCES = {
    "Ingress": ("networking.k8s.io", "ingresses"),
    "Service": ("", "services"),
    "Middleware": ("traefik.io", "middlewares"),
    "HTTPRoute": ("gateway.networking.k8s.io", "httproutes"),
    "ReferenceGrant": ("gateway.networking.k8s.io", "referencegrants"),
    "SecurityPolicy": ("gateway.envoyproxy.io", "securitypolicies"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
}


@pytest.fixture(scope="module")
def binary():
    b = cs.gate_binary()
    probe = cs.run([str(b), "render", "--help"], {"PATH": "/usr/bin:/bin"})
    if probe.returncode != 0:
        raise AssertionError(
            f"{b} has no `render` subcommand (issue 4, discovery): build the binary from a tree "
            f"that includes discovery.\n{probe.stdout}{probe.stderr}"
        )
    return b


def values_for(scenario):
    values, _ = SCENARIOS[scenario]
    if values.get("discovery", {}).get("namespaces"):
        values = cs.deep_merge(values, {"discovery": {"namespaces": values["discovery"]["namespaces"] + [WORKSPACE_NS]}})
    return values


def render_workspace(binary, scenario, tmp_path, service=SERVICE):
    chart_objs = cs.objects(cs.render(values_for(scenario)))
    pod = cs.PodFiles(tmp_path / "pod", chart_objs, EXISTING_SECRETS, EXISTING_CONFIG_MAPS)
    service_file = tmp_path / "service.yaml"
    service_file.write_text(yaml.safe_dump(service))
    argv = pod.argv(binary)
    argv[1] = "render"
    argv += ["--service", str(service_file)]
    result = cs.run(argv, pod.env())
    assert result.returncode == 0, f"render failed for {scenario}:\n{result.stdout}{result.stderr}"
    written = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert written, f"render wrote nothing:\n{result.stdout}"
    return chart_objs, written


class Rbac:
    """Evaluates the chart's Roles and bindings for one subject."""

    def __init__(self, objs, subject):
        kind, name, ns = subject
        self.cluster_rules, self.ns_rules = [], {}

        def bound(b):
            return any(s["kind"] == kind and s["name"] == name and s.get("namespace") == ns for s in b.get("subjects", []))

        for b in cs.find(objs, "ClusterRoleBinding"):
            if bound(b):
                self.cluster_rules += cs.one(objs, "ClusterRole", b["roleRef"]["name"])["rules"]
        for b in cs.find(objs, "RoleBinding"):
            if bound(b):
                target = b["metadata"]["namespace"]
                if b["roleRef"]["kind"] == "ClusterRole":
                    rules = cs.one(objs, "ClusterRole", b["roleRef"]["name"])["rules"]
                else:
                    rules = next(
                        r["rules"]
                        for r in cs.find(objs, "Role", b["roleRef"]["name"])
                        if r["metadata"]["namespace"] == target
                    )
                self.ns_rules.setdefault(target, []).extend(rules)

    def allows(self, verb, group, resource, namespace, name=None):
        rules = self.cluster_rules + self.ns_rules.get(namespace, [])
        return any(
            (group in r["apiGroups"] or "*" in r["apiGroups"])
            and (resource in r["resources"] or "*" in r["resources"])
            and (verb in r["verbs"] or "*" in r["verbs"])
            and ("resourceNames" not in r or name in r["resourceNames"])
            for r in rules
        )


@pytest.mark.parametrize("scenario", sorted(MODES))
def test_chart_rbac_lets_the_gate_write_what_it_renders(binary, scenario, tmp_path):
    chart_objs, written = render_workspace(binary, scenario, tmp_path)
    rbac = Rbac(chart_objs, SA)
    missing = []
    for obj in written:
        group, resource = RESOURCES[obj["kind"]]
        ns = obj["metadata"]["namespace"]
        # Server-side apply is a patch (authorized as create when the object
        # is new); the sweep lists; removal deletes.
        for verb in ("list", "create", "patch", "delete"):
            if not rbac.allows(verb, group, resource, ns):
                missing.append(f"{verb} {resource}.{group or 'core'} in {ns} ({obj['kind']}/{obj['metadata']['name']})")
    # Watching workspace Services, and the Lease in the gate's namespace.
    for verb in ("list", "watch"):
        if not rbac.allows(verb, "", "services", WORKSPACE_NS):
            missing.append(f"{verb} services in {WORKSPACE_NS}")
    lease = cs.gate_config(chart_objs)["discovery"]["lease_name"]
    if not rbac.allows("create", "coordination.k8s.io", "leases", cs.NAMESPACE):
        missing.append(f"create leases in {cs.NAMESPACE}")
    for verb in ("get", "update"):
        if not rbac.allows(verb, "coordination.k8s.io", "leases", cs.NAMESPACE, lease):
            missing.append(f"{verb} lease {lease} in {cs.NAMESPACE}")
    if SCENARIOS[scenario][0].get("discovery", {}).get("namespaceSelector"):
        for verb in ("list", "watch"):
            if not rbac.allows(verb, "", "namespaces", ""):
                missing.append(f"{verb} namespaces (cluster)")
    assert not missing, "the chart's RBAC does not allow:\n" + "\n".join(missing)
    assert {o["kind"] for o in written} >= {
        "ingress-nginx": {"Ingress", "Service", "NetworkPolicy"},
        "traefik": {"Ingress", "Middleware", "NetworkPolicy"},
        "gateway-api": {"HTTPRoute", "SecurityPolicy", "ReferenceGrant", "NetworkPolicy"},
    }[MODES[scenario]]


@pytest.mark.parametrize("scenario", sorted(MODES))
def test_rendered_routing_points_at_the_chart_services(binary, scenario, tmp_path):
    chart_objs, written = render_workspace(binary, scenario, tmp_path)
    gate = cs.one(chart_objs, "Service", "gate-workspace-gate")
    ports = {p["name"]: p for p in gate["spec"]["ports"]}
    in_cluster = f"gate-workspace-gate.{cs.NAMESPACE}.svc.cluster.local"
    mode = MODES[scenario]
    text = yaml.safe_dump_all(written)
    if mode == "ingress-nginx":
        (ing,) = [o for o in written if o["kind"] == "Ingress" and "nginx.ingress.kubernetes.io/auth-url" in o["metadata"].get("annotations", {})]
        ann = ing["metadata"]["annotations"]
        assert ann["nginx.ingress.kubernetes.io/auth-url"] == f"http://{in_cluster}:{ports['http']['port']}/check/nginx?host=$host&buffer=32k"
        # The login starts on the workspace host (nginx expands $host), which binds it to the browser.
        assert ann["nginx.ingress.kubernetes.io/auth-signin"] == "https://$host/.workspace-gate/start?m=$request_method"
        (ext,) = [o for o in written if o["kind"] == "Service"]
        assert ext["spec"]["externalName"] == in_cluster
        assert ext["spec"]["ports"][0]["port"] == ports["http"]["port"]
    elif mode == "traefik":
        (mw,) = [o for o in written if o["kind"] == "Middleware"]
        fa = mw["spec"]["forwardAuth"]
        check_tls = SCENARIOS[scenario][0].get("checkTls", {})
        if check_tls.get("secretName"):
            # The Service port the chart opens for the HTTPS listener.
            assert fa["address"] == f"https://{in_cluster}:{ports['https-check']['port']}/check/traefik"
            assert fa["tls"] == {"caSecret": check_tls["caSecret"]}
        else:
            assert fa["address"] == f"http://{in_cluster}:{ports['http']['port']}/check/traefik"
            assert "tls" not in fa
        ing_class = SCENARIOS[scenario][0]["routing"].get("ingressClass", "traefik")
        assert all(o["spec"]["ingressClassName"] == ing_class for o in written if o["kind"] == "Ingress")
    else:
        (policy,) = [o for o in written if o["kind"] == "SecurityPolicy"]
        (ref,) = policy["spec"]["extAuth"]["grpc"]["backendRefs"]
        assert (ref["name"], ref["namespace"], ref["port"]) == ("gate-workspace-gate", cs.NAMESPACE, ports["grpc"]["port"])
        assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
        (grant,) = [o for o in written if o["kind"] == "ReferenceGrant"]
        assert grant["metadata"]["namespace"] == cs.NAMESPACE
        assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": "gate-workspace-gate"}]
        gw = SCENARIOS[scenario][0]["routing"]["gateway"]
        for route in (o for o in written if o["kind"] == "HTTPRoute"):
            (parent,) = route["spec"]["parentRefs"]
            assert (parent["name"], parent["namespace"]) == (gw["name"], gw["namespace"])
    assert "9090" not in text, "routing must never point at the admin port"


def test_with_ssh_the_gate_pods_reach_the_sshd_port_and_no_route_carries_it(binary, tmp_path):
    """A workspace with GitLab's SSH port: discovery writes no HTTP host for
    it, and its NetworkPolicy admits this release's own pods (the labels the
    chart gives them, in the release namespace) to the sshd's target port."""
    service = yaml.safe_load(yaml.safe_dump(SERVICE))
    service["spec"]["ports"].append({"name": "ssh", "port": 60022, "targetPort": 60022})
    chart_objs, written = render_workspace(binary, "ssh-existing-secrets", tmp_path, service)
    assert "60022-" not in yaml.safe_dump_all(written), "the SSH port got an HTTP host"
    policy = next(o for o in written if o["kind"] == "NetworkPolicy")
    rules = policy["spec"]["ingress"]
    assert len(rules) == 2, rules
    assert all(p["port"] != 60022 for p in rules[0]["ports"]), "the controller may reach sshd"
    gate_rule = rules[1]
    assert gate_rule["ports"] == [{"protocol": "TCP", "port": 60022}]
    peer = gate_rule["from"][0]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": cs.NAMESPACE}
    pod_labels = cs.one(chart_objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for k, v in peer["podSelector"]["matchLabels"].items():
        assert pod_labels.get(k) == v, f"the gate's pods do not carry {k}={v}: {pod_labels}"
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == cs.RELEASE
