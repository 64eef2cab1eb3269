"""values.schema.json rejects bad values before anything renders, with a
message naming the field. Each case is checked twice: through the Helm
library's schema validation and through a render (what `helm install` does)."""

import pytest

import chart_support as cs

# (description, bad values, text the message must contain: the field and why)
BAD_VALUES = [
    ("unknown routing mode", {"routing": {"mode": "istio"}}, ["/routing/mode", "must be one of"]),
    ("URL instead of a host name", {"workspaceDomain": "https://workspaces.example.test"}, ["/workspaceDomain", "does not match pattern"]),
    ("auth host with a port", {"authHost": "login.example.test:443"}, ["/authHost"]),
    ("string instead of a number", {"replicaCount": "two"}, ["/replicaCount", "want integer"]),
    ("signing key too short", {"keys": {"signingKeys": ["c2hvcnQ="]}}, ["/keys/signingKeys/0", "does not match pattern"]),
    ("issuer not https", {"oidc": {"issuer": "http://gitlab.example.test"}}, ["/oidc/issuer", "does not match pattern"]),
    ("scopes without openid", {"oidc": {"scopes": ["profile", "read_api"]}}, ["/oidc/scopes", "'openid'"]),
    ("misspelt top-level key", {"replicas": 3}, ["additional properties 'replicas' not allowed"]),
    ("misspelt nested key", {"oidc": {"clientID": "x"}}, ["/oidc", "additional properties 'clientID' not allowed"]),
    ("gateway-api mode without a Gateway", {"routing": {"mode": "gateway-api"}}, ["/routing/gateway/name", "/routing/gateway/namespace"]),
    ("existing keys Secret without entries", {"keys": {"existingSecret": "gate-keys"}}, ["/keys/existingSecretKeys", "minItems"]),
    (
        "existing keys Secret and inline keys together",
        {"keys": {"existingSecret": "gate-keys", "existingSecretKeys": ["k"], "signingKeys": [cs.KEY_A]}},
        ["/keys/signingKeys", "maxItems"],
    ),
    ("namespaced RBAC without namespaces", {"rbac": {"scope": "namespaced"}}, ["/discovery/namespaces", "minItems"]),
    ("port out of range", {"ports": {"grpc": 70000}}, ["/ports/grpc", "maximum"]),
    ("public port as text", {"publicPort": "443"}, ["/publicPort"]),
    ("not a duration", {"session": {"passTtl": "soon"}}, ["/session/passTtl", "does not match pattern"]),
    ("unknown authorization mode", {"authorization": {"mode": "ldap"}}, ["/authorization/mode", "must be one of"]),
    ("unknown transfer method", {"session": {"transfer": "cookie"}}, ["/session/transfer", "must be one of"]),
    ("invalid namespace name", {"discovery": {"namespaces": ["Team_A"]}}, ["/discovery/namespaces/0"]),
    (
        "namespace list and selector together",
        {"discovery": {"namespaces": ["team-a"], "namespaceSelector": "gitlab-workspaces=true"}},
        ["/discovery/namespaceSelector", "maxLength"],
    ),
    ("lease name with a dot", {"discovery": {"leaseName": "gate.lease"}}, ["/discovery/leaseName"]),
    ("annotation key with a space", {"discovery": {"ownerIdAnnotation": "owner id"}}, ["/discovery/ownerIdAnnotation"]),
    ("check CA Secret without the TLS Secret", {"checkTls": {"caSecret": "gate-ca"}}, ["/checkTls/secretName", "minLength"]),
    ("check TLS Secret name with capitals", {"checkTls": {"secretName": "Gate_TLS"}}, ["/checkTls/secretName"]),
    ("check CA Secret name with a dot", {"checkTls": {"secretName": "gate-tls", "caSecret": "gate.ca"}}, ["/checkTls/caSecret"]),
    ("check port out of range", {"checkTls": {"secretName": "gate-tls", "port": 0}}, ["/checkTls/port", "minimum"]),
    ("check port as text", {"checkTls": {"port": "8443"}}, ["/checkTls/port", "want integer"]),
    ("misspelt checkTls key", {"checkTls": {"secret": "gate-tls"}}, ["/checkTls", "additional properties 'secret' not allowed"]),
]


@pytest.mark.parametrize("values, expected", [(v, e) for _, v, e in BAD_VALUES], ids=[d for d, _, _ in BAD_VALUES])
def test_schema_rejects_bad_values_naming_the_field(values, expected):
    with cs.helm.Chart.load(str(cs.CHART_DIR)) as chart:
        with pytest.raises(cs.helm.HelmValuesError) as validated:
            chart.validate_schema(chart.merge_values(values))
        with pytest.raises(cs.helm.HelmValuesError) as rendered:
            chart.render(values, name=cs.RELEASE, namespace=cs.NAMESPACE)
    for err in (validated.value, rendered.value):
        for text in expected:
            assert text in str(err), f"{text!r} not in: {err}"


def test_schema_accepts_the_defaults_and_every_scenario():
    from scenarios import SCENARIOS

    with cs.helm.Chart.load(str(cs.CHART_DIR)) as chart:
        for values, _ in SCENARIOS.values():
            chart.validate_schema(chart.merge_values(values))
