"""Values for the installations the chart tests render: the defaults, each
routing mode with chart-created and with existing Secrets, Traefik over
https, namespaced RBAC, and every optional object switched on."""

from chart_support import BASE_VALUES, KEY_A, KEY_B, NAMESPACE, RELEASE, deep_merge, self_signed_tls

# Secrets a user creates before `helm install` in the "existing" scenarios
# (what `kubectl create secret generic ... --from-file` would hold, and the
# TLS Secret a cert-manager Certificate for the gate's Service would).
EXISTING_SECRETS = {
    "gitlab-oauth": {"client-secret": "gloas-0123456789abcdef0123456789abcdef"},
    "gate-keys": {"key-2026-11": KEY_B, "key-2026-05": KEY_A},
    "gate-check-tls": self_signed_tls(f"{RELEASE}-workspace-gate.{NAMESPACE}.svc.cluster.local"),
}

CREATED = {
    "oidc": {"clientSecret": "gloas-0123456789abcdef0123456789abcdef"},
    "keys": {"signingKeys": [KEY_B, KEY_A]},
}
EXISTING = {
    "oidc": {"existingSecret": "gitlab-oauth"},
    "keys": {"existingSecret": "gate-keys", "existingSecretKeys": ["key-2026-11", "key-2026-05"]},
}
GATEWAY = {"routing": {"mode": "gateway-api", "gateway": {"name": "eg", "namespace": "envoy-gateway-system", "sectionName": "https-workspaces"}}}


def _v(*parts):
    out = dict(BASE_VALUES)
    for p in parts:
        out = deep_merge(out, p)
    return out


# name -> (values, ready to run: all secrets present)
SCENARIOS = {
    "defaults": ({}, False),
    "ingress-nginx-created-secrets": (_v({"routing": {"mode": "ingress-nginx", "tlsSecret": "workspaces-wildcard-tls"}}, CREATED), True),
    "ingress-nginx-existing-secrets": (_v({"routing": {"mode": "ingress-nginx"}}, EXISTING), True),
    "traefik-created-secrets": (_v({"routing": {"mode": "traefik"}}, CREATED), True),
    "traefik-existing-secrets": (_v({"routing": {"mode": "traefik", "ingressClass": "traefik-internal"}}, EXISTING), True),
    "gateway-api-created-secrets": (_v(GATEWAY, CREATED), True),
    "gateway-api-existing-secrets": (_v(GATEWAY, EXISTING), True),
    "none-generated-key": (_v({"routing": {"mode": "none"}, "oidc": {"clientSecret": "s"}}), True),
    "namespaced-rbac": (
        _v(
            CREATED,
            {
                "discovery": {
                    "namespaces": ["team-a-workspaces", "team-b-workspaces"],
                    "ownerIdAnnotation": "example.test/owner-id",
                    "ownerUsernameAnnotation": "example.test/owner",
                    "leaseName": "gate-lease",
                    "leaseDuration": "20s",
                },
                "authorization": {"mode": "owner-annotation"},
            },
        ),
        True,
    ),
    "traefik-check-tls": (
        _v(
            EXISTING,
            {
                "routing": {"mode": "traefik"},
                "checkTls": {"secretName": "gate-check-tls", "caSecret": "gate-ca"},
                "networkPolicy": {
                    "enabled": True,
                    "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}],
                },
            },
        ),
        True,
    ),
    "namespace-selector": (
        _v(EXISTING, {"routing": {"mode": "traefik"}, "discovery": {"namespaceSelector": "gitlab-workspaces=true,team!=legacy"}}),
        True,
    ),
    "everything-on": (
        _v(
            CREATED,
            GATEWAY,
            {
                "authHost": "login.workspaces-auth.example.test",
                "publicPort": 8443,
                "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9},
                "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                "networkPolicy": {
                    "enabled": True,
                    "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}],
                    "adminFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                    "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}],
                },
                "extraEnv": [{"name": "WORKSPACE_GATE_LOG_LEVEL", "value": "info,workspace_gate=debug"}],
                "extraConfig": {"session": {"transfer_ttl": "30s"}},
                "session": {"passTtl": "8h", "loginTtl": "3d"},
                "imagePullSecrets": [{"name": "regcred"}],
                "podAnnotations": {"example.test/team": "platform"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gate", "effect": "NoSchedule"}],
            },
        ),
        True,
    ),
}
