"""The real binary consumes what the chart renders: the Deployment's
arguments, environment and mounted files, laid out in a temporary directory
(see chart_support.PodFiles), pass `workspace-gate check-config`; and the
install guide's private-CA recipe, as rendered, makes the binary trust a
GitLab whose certificate comes from that CA.

The binary is found through $WORKSPACE_GATE_BIN, $CARGO_TARGET_DIR/debug or
target/debug; these tests fail (never skip) when it is missing."""

import contextlib
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import chart_support as cs
from scenarios import EXISTING_CONFIG_MAPS, EXISTING_SECRETS, SCENARIOS, SSH

READY = sorted(name for name, (_, ready) in SCENARIOS.items() if ready)


@pytest.fixture(scope="module")
def binary():
    return cs.gate_binary()


def pod_files(scenario, tmp_path):
    values, _ = SCENARIOS[scenario]
    return cs.PodFiles(tmp_path / "pod", cs.objects(cs.render(values)), EXISTING_SECRETS, EXISTING_CONFIG_MAPS)


def check_config(binary, pod):
    argv = pod.argv(binary)
    assert argv[1] == "serve", argv
    argv[1] = "check-config"  # same arguments, validation only
    return cs.run(argv, pod.env())


@pytest.mark.parametrize("scenario", READY)
def test_rendered_configuration_passes_check_config(binary, scenario, tmp_path):
    pod = pod_files(scenario, tmp_path)
    result = check_config(binary, pod)
    assert result.returncode == 0, (
        f"check-config refused the {scenario} render (exit {result.returncode}):\n"
        f"{result.stdout}{result.stderr}\nconfig:\n{open(pod.config_path()).read()}"
    )


def test_default_values_are_refused_until_the_oauth_client_is_set(binary, tmp_path):
    """Negative control: the defaults lack the OAuth client, and check-config
    says so by key. This also proves check-config really validates (a binary
    that accepted everything would fail here)."""
    result = check_config(binary, pod_files("defaults", tmp_path))
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "oidc.client_id" in out and "oidc.client_secret_file" in out, out


def test_a_damaged_key_file_is_refused_naming_the_key(binary, tmp_path):
    pod = pod_files("ingress-nginx-existing-secrets", tmp_path)
    key = tmp_path / "pod" / "etc" / "workspace-gate" / "keys" / "key-2026-05"
    key.chmod(0o644)
    key.write_text("too-short\n")
    result = check_config(binary, pod)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "keys.files" in out, out


def test_a_check_key_not_matching_its_certificate_is_refused(binary, tmp_path):
    """The HTTPS listener's files are the mounted TLS Secret's, and
    check-config loads them: a key from another certificate is named."""
    pod = pod_files("traefik-check-tls", tmp_path)
    key = tmp_path / "pod" / "etc" / "workspace-gate" / "check-tls" / "tls.key"
    key.chmod(0o644)
    key.write_text(cs.self_signed_tls("other.example.test")["tls.key"])
    result = check_config(binary, pod)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "tls.key_file" in out, out


@pytest.mark.parametrize(
    "path, key",
    [
        ("ssh/host-keys/host_ed25519", "ssh.host_key_files"),
        ("ssh/backend-key/ssh-privatekey", "ssh.backend_key_file"),
    ],
)
def test_a_damaged_ssh_key_is_refused_naming_the_key(binary, tmp_path, path, key):
    """check-config reads the mounted SSH keys: the second host key or the
    backend key replaced by a public key is named."""
    pod = pod_files("ssh-existing-secrets", tmp_path)
    f = tmp_path / "pod" / "etc" / "workspace-gate" / path
    f.chmod(0o644)
    f.write_text(SSH["known_hosts"].split(" ", 1)[1])
    result = check_config(binary, pod)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert key in out, out


def test_a_missing_known_hosts_entry_is_refused_naming_the_key(binary, tmp_path):
    pod = pod_files("ssh-inline-keys", tmp_path)
    (tmp_path / "pod" / "etc" / "workspace-gate" / "ssh" / "known-hosts" / "ssh_known_hosts").unlink()
    result = check_config(binary, pod)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "ssh.backend_known_hosts_file" in out, out


def test_environment_overrides_reach_the_binary(binary, tmp_path):
    """`extraEnv` is passed as WORKSPACE_GATE_<KEY> and wins over the file."""
    values, _ = SCENARIOS["everything-on"]
    values = cs.deep_merge(values, {"extraEnv": [{"name": "WORKSPACE_GATE_LOG_FORMAT", "value": "xml"}]})
    pod = cs.PodFiles(tmp_path / "pod", cs.objects(cs.render(values)), EXISTING_SECRETS, EXISTING_CONFIG_MAPS)
    result = check_config(binary, pod)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "log.format" in out, out


# --- the install guide's private-CA recipe, end to end -------------------------


def readyz_when(admin_port, proc, log, done, timeout=20):
    """Polls /readyz until `done(body, log text)`; returns the last body and log."""
    body, text, deadline = "", "", time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as r:
                body = r.read().decode()
        except urllib.error.HTTPError as e:
            body = e.read().decode()
        except OSError:
            pass
        text = log.read_text(errors="replace")
        if done(body, text):
            break
        time.sleep(0.2)
    return body, text


@contextlib.contextmanager
def serving_against_private_ca_gitlab(binary, tmp_path, env):
    """Runs the gate with `env` against a stand-in GitLab whose certificate
    comes from the private CA in the recipe's ConfigMap; yields the process,
    its admin port and its log file, and stops both at the end."""
    from scenarios import GITLAB_TLS

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = tmp_path / "gate.log"
    with cs.discovery_server(GITLAB_TLS) as issuer:
        _, admin_port = cs.write_file_source_config(run_dir, issuer)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(binary), "serve", "--config", str(run_dir / "config.yaml")],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            yield proc, admin_port, log
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.parametrize("with_recipe", [True, False], ids=["recipe", "without-ssl-cert-file"])
def test_private_ca_recipe_lets_the_gate_trust_gitlab(binary, tmp_path, with_recipe):
    """The rendered pod's SSL_CERT_FILE, pointing into the rendered mount of
    the CA ConfigMap, is what the binary trusts GitLab's certificate with;
    without it the same GitLab is refused."""
    pod = cs.PodFiles(tmp_path / "pod", cs.objects(cs.render(SCENARIOS["private-ca"][0])), EXISTING_SECRETS, EXISTING_CONFIG_MAPS)
    pod_env = pod.env()
    bundle = pod.host_path(pod_env["SSL_CERT_FILE"])
    assert open(bundle).read() == EXISTING_CONFIG_MAPS["gitlab-ca"]["ca.crt"], "the mount holds the ConfigMap's CA"
    env = {"PATH": pod_env["PATH"], "HOME": str(tmp_path)}
    if with_recipe:
        env["SSL_CERT_FILE"] = bundle
    with serving_against_private_ca_gitlab(binary, tmp_path, env) as (proc, admin_port, log):
        if with_recipe:
            body, text = readyz_when(admin_port, proc, log, lambda b, _: "oidc: true" in b)
            assert "oidc: true" in body, f"/readyz: {body!r}\n{text}"
        else:
            body, text = readyz_when(admin_port, proc, log, lambda b, t: "OIDC discovery failed" in t and "oidc:" in b)
            assert "OIDC discovery failed" in text, text
            assert "oidc: false" in body, f"/readyz: {body!r}\n{text}"
        assert proc.poll() is None, text
