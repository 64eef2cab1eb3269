"""The binary starts and serves as an unprivileged user (nobody) from a
read-only working directory, as it does in the chart's pod (non-root,
read-only root filesystem). It reads a tiny configuration and workspaces file
and a stand-in OpenID provider's discovery document; /healthz on the admin port
must answer 200 (it does not depend on the provider), /readyz too once the
provider's document and the workspaces are loaded, and the process must stay
up, write nothing, run with the unprivileged identity and exit cleanly on
SIGTERM.

Needs root to switch users (setpriv from util-linux); fails, never skips,
when that is impossible."""

import os
import pathlib
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request

import pytest

import chart_support as cs


@pytest.fixture
def provider():
    with cs.discovery_server() as issuer:
        yield issuer


def unprivileged_prefix():
    if os.geteuid() != 0:
        raise AssertionError("this test switches to the user nobody and must run as root (it does in CI)")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise AssertionError("setpriv not found: apt-get install -y util-linux")
    import grp
    import pwd

    pwd.getpwnam("nobody")
    group = "nogroup"
    try:
        grp.getgrnam(group)
    except KeyError:
        group = "nobody"
    return [setpriv, "--reuid=nobody", f"--regid={group}", "--clear-groups", "--no-new-privs"]


def test_binary_serves_healthz_as_nobody_from_a_read_only_directory(provider):
    binary = cs.gate_binary()
    prefix = unprivileged_prefix()
    # A world-readable tree owned by root; nothing in it is writable by nobody.
    root = pathlib.Path(tempfile.mkdtemp(prefix="wg-ro-"))
    try:
        os.chmod(root, 0o755)
        shutil.copy2(binary, root / "workspace-gate")
        http_port, admin_port = cs.write_file_source_config(root, provider)
        cwd = root / "cwd"
        cwd.mkdir()
        for p in [root, cwd, *root.iterdir()]:
            mode = 0o555 if p.is_dir() or p.name == "workspace-gate" else 0o444
            os.chmod(p, mode)
        before = sorted(p.name for p in root.rglob("*"))

        env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
        argv = prefix + [str(root / "workspace-gate"), "serve", "--config", str(root / "config.yaml")]
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            status, deadline = None, time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1) as r:
                        status = r.status
                        break
                except OSError:
                    time.sleep(0.2)
            log.seek(0)
            output = log.read().decode(errors="replace")
            assert proc.poll() is None, f"workspace-gate exited with {proc.returncode}:\n{output}"
            assert status == 200, f"/healthz did not answer 200 within 30s:\n{output}"
            # It really runs as nobody, not as root.
            uid_line = next(
                line for line in pathlib.Path(f"/proc/{proc.pid}/status").read_text().splitlines() if line.startswith("Uid:")
            )
            import pwd

            assert int(uid_line.split()[1]) == pwd.getpwnam("nobody").pw_uid, uid_line
            # Ready too (the chart's readiness probe): the stand-in provider's
            # discovery document and the workspaces file are loaded.
            ready, deadline = None, time.monotonic() + 15
            while time.monotonic() < deadline and ready != 200:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as r:
                        ready = r.status
                except OSError:
                    time.sleep(0.2)
            assert ready == 200, f"/readyz never answered 200:\n{output}"
            # The HTTP listener is bound too.
            with socket.create_connection(("127.0.0.1", http_port), timeout=2):
                pass
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.seek(0)
        output = log.read().decode(errors="replace")
        assert proc.returncode == 0, f"unclean shutdown on SIGTERM: exit {proc.returncode}\n{output}"
        assert sorted(p.name for p in root.rglob("*")) == before, "the gate wrote into its directory"
        assert not (stat.S_IMODE(os.stat(cwd).st_mode) & 0o222)
    finally:
        for p in [root, *root.rglob("*")]:
            if p.is_dir():
                os.chmod(p, 0o755)
        shutil.rmtree(root)
