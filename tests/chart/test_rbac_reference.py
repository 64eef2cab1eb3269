"""The chart's RBAC is exactly the reference RBAC in deploy/rbac.yaml, which
the discovery tests prove sufficient and minimal by replaying every request the
gate makes. Compared per routing mode, with and without a namespace selector,
as sets of (where, API group, resource, resource name, verb)."""

import pytest
import yaml

import chart_support as cs

REFERENCE = cs.REPO / "deploy" / "rbac.yaml"
LEASE = "<the lease>"


def load_reference():
    if not REFERENCE.is_file():
        raise AssertionError(f"{REFERENCE} is missing: it comes with discovery (issue 4); merge that branch")
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(REFERENCE.read_text()) if d}


def grants(rules, where, lease_name):
    out = set()
    for r in rules:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for name in r.get("resourceNames", [None]):
                    if res == "leases" and name == lease_name:
                        name = LEASE
                    for verb in r["verbs"]:
                        out.add((where, g, res, name, verb))
    return out


def reference_grants(mode, selector, network_policy=True):
    ref = load_reference()
    out = set()
    discovery = [
        r for r in ref[("ClusterRole", "workspace-gate-discovery")]["rules"] if selector or "namespaces" not in r["resources"]
    ]
    out |= grants(discovery, "cluster", None)
    if mode == "none":
        return out  # no routing objects, no leader election
    (lease_name,) = {n for r in ref[("Role", "workspace-gate-lease")]["rules"] for n in r.get("resourceNames", [])}
    out |= grants(ref[("Role", "workspace-gate-lease")]["rules"], "gate", lease_name)
    out |= grants(ref[("ClusterRole", f"workspace-gate-routing-{mode}")]["rules"], "cluster", None)
    if mode == "gateway-api":
        out |= grants(ref[("Role", "workspace-gate-reference-grants")]["rules"], "gate", None)
    if network_policy:
        out |= grants(ref[("ClusterRole", "workspace-gate-network-policies")]["rules"], "cluster", None)
    return out


def chart_grants(values):
    objs = cs.objects(cs.render(values))
    lease_name = cs.gate_config(objs)["discovery"]["lease_name"]
    out = set()
    for role in cs.find(objs, "ClusterRole"):
        out |= grants(role["rules"], "cluster", None)
    for role in cs.find(objs, "Role"):
        assert role["metadata"]["namespace"] == cs.NAMESPACE, role["metadata"]
        out |= grants(role["rules"], "gate", lease_name)
    return out


@pytest.mark.parametrize("selector", [False, True], ids=["all-namespaces", "namespace-selector"])
@pytest.mark.parametrize("mode", ["ingress-nginx", "traefik", "gateway-api", "none"])
def test_chart_rbac_equals_the_reference(mode, selector):
    values = cs.deep_merge(cs.BASE_VALUES, {"routing": {"mode": mode}})
    if mode == "gateway-api":
        values = cs.deep_merge(values, {"routing": {"gateway": {"name": "eg", "namespace": "envoy-gateway-system"}}})
    if selector:
        values = cs.deep_merge(values, {"discovery": {"namespaceSelector": "gitlab-workspaces=true"}})
    chart, reference = chart_grants(values), reference_grants(mode, selector)
    assert chart == reference, (
        f"only in the chart: {sorted(chart - reference, key=str)}\n"
        f"only in deploy/rbac.yaml: {sorted(reference - chart, key=str)}"
    )


@pytest.mark.parametrize("mode", ["ingress-nginx", "traefik", "gateway-api"])
def test_workspace_network_policies_can_be_written_unless_turned_off(mode):
    values = cs.deep_merge(cs.BASE_VALUES, {"routing": {"mode": mode}})
    if mode == "gateway-api":
        values = cs.deep_merge(values, {"routing": {"gateway": {"name": "eg", "namespace": "envoy-gateway-system"}}})
    netpol = ("cluster", "networking.k8s.io", "networkpolicies")
    assert netpol in {g[:3] for g in chart_grants(values)}
    off_values = cs.deep_merge(values, {"discovery": {"networkPolicy": {"enabled": False}}})
    off = chart_grants(off_values)
    assert netpol not in {g[:3] for g in off}, sorted(off, key=str)
    assert off == reference_grants(mode, False, network_policy=False)
    assert cs.gate_config(cs.objects(cs.render(off_values)))["discovery"]["network_policy"] == {"enabled": False}
