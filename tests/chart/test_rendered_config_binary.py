"""The real binary consumes what the chart renders: the Deployment's
arguments, environment and mounted files, laid out in a temporary directory
(see chart_support.PodFiles), pass `workspace-gate check-config`.

The binary is found through $WORKSPACE_GATE_BIN, $CARGO_TARGET_DIR/debug or
target/debug; these tests fail (never skip) when it is missing."""

import pytest

import chart_support as cs
from scenarios import EXISTING_CONFIG_MAPS, EXISTING_SECRETS, SCENARIOS

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


def test_environment_overrides_reach_the_binary(binary, tmp_path):
    """`extraEnv` is passed as WORKSPACE_GATE_<KEY> and wins over the file."""
    values, _ = SCENARIOS["everything-on"]
    values = cs.deep_merge(values, {"extraEnv": [{"name": "WORKSPACE_GATE_LOG_FORMAT", "value": "xml"}]})
    pod = cs.PodFiles(tmp_path / "pod", cs.objects(cs.render(values)), EXISTING_SECRETS, EXISTING_CONFIG_MAPS)
    result = check_config(binary, pod)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "log.format" in out, out
