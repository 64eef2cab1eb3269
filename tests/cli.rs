//! The command line: `check-config` reports every problem at once and exits
//! non-zero; `keygen` prints a usable key.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_workspace-gate"))
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("WORKSPACE_GATE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn broken_config_names_every_problem_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("wg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.yaml");
    std::fs::write(
        &cfg,
        "auth_host: https://workspaces.test\npublic_scheme: http\nlisten:\n  http: 0.0.0.0:8080\n  admin: nonsense\noidc:\n  issuer: http://idp.example\n  client_secret_file: missing-secret\nkeys:\n  files: [missing-key]\nsession:\n  pass_ttl: forever\n  transfer_ttl: 5m\nauthorization:\n  mode: everyone\nunknown_section: 1\n",
    )
    .unwrap();
    let out = clean_env(bin().args(["check-config", "--config"]).arg(&cfg))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "auth_host",
        "workspace_domain",
        "public_scheme",
        "listen.admin",
        "oidc.issuer",
        "oidc.client_id",
        "oidc.client_secret_file",
        "keys.files",
        "session.pass_ttl",
        "session.transfer_ttl",
        "workspaces.file",
        "authorization.mode",
        "unknown_section",
    ] {
        assert!(
            err.contains(&format!("- {key}:")),
            "no problem reported for {key} in:\n{err}"
        );
    }
    assert_eq!(
        err.matches("invalid configuration").count(),
        1,
        "one message: {err}"
    );
}

#[test]
fn environment_overrides_the_file_and_valid_config_passes() {
    let dir = std::env::temp_dir().join(format!("wg-cli-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = bin().arg("keygen").output().unwrap();
    assert!(key.status.success());
    std::fs::write(dir.join("key"), &key.stdout).unwrap();
    std::fs::write(dir.join("secret"), "s3cret").unwrap();
    std::fs::write(dir.join("ws.yaml"), "workspaces: []\n").unwrap();
    let cfg = dir.join("ok.yaml");
    std::fs::write(
        &cfg,
        "auth_host: workspaces.test\nworkspace_domain: workspaces.test\noidc:\n  issuer: https://gitlab.example\n  client_id: wrong-on-purpose\n  client_secret_file: secret\nkeys:\n  files: [key]\nworkspaces:\n  file: ws.yaml\n",
    )
    .unwrap();
    let ok = clean_env(bin().args(["check-config", "--config"]).arg(&cfg))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = clean_env(bin().args(["check-config", "--config"]).arg(&cfg))
        .env("WORKSPACE_GATE_SESSION_PASS_TTL", "not-a-duration")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("session.pass_ttl"));
}

/// Runs `cmd`, killing it when it has not ended within 20 s (a bound only
/// against hangs; no assertion depends on time).
fn output_within(cmd: &mut Command) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("the command hung: {cmd:?}");
}

#[test]
fn fifos_and_deep_yaml_are_refused_without_hanging() {
    let dir = std::env::temp_dir().join(format!("wg-cli-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["key", "secret"] {
        let p = dir.join(f);
        let _ = std::fs::remove_file(&p);
        let made = Command::new("mkfifo").arg(&p).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "mkfifo (coreutils) is needed"
        );
    }
    std::fs::write(dir.join("ws.yaml"), "workspaces: []\n").unwrap();
    let cfg = dir.join("fifo.yaml");
    std::fs::write(
        &cfg,
        "auth_host: workspaces.test\nworkspace_domain: workspaces.test\noidc:\n  issuer: https://gitlab.example\n  client_id: c\n  client_secret_file: secret\nkeys:\n  files: [key]\nworkspaces:\n  file: ws.yaml\n",
    )
    .unwrap();
    let out = output_within(clean_env(
        bin().args(["check-config", "--config"]).arg(&cfg),
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["keys.files", "oidc.client_secret_file"] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("- {key}:")) && l.contains("not a regular file")),
            "{key} not refused as a FIFO in:\n{err}"
        );
    }

    let deep = dir.join("deep.yaml");
    std::fs::write(
        &deep,
        format!(
            "auth_host: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    )
    .unwrap();
    let out = output_within(clean_env(
        bin().args(["check-config", "--config"]).arg(&deep),
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nested deeper than 64"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when something answers HTTP 200 at `http://127.0.0.1:<port>/healthz`.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// A running `serve` whose identity provider cannot be reached; returns
/// the process, the admin port and the directory to remove.
fn serve_without_provider(tag: &str) -> (std::process::Child, u16, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("wg-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = bin().arg("keygen").output().unwrap();
    std::fs::write(dir.join("key"), &key.stdout).unwrap();
    std::fs::write(dir.join("secret"), "s3cret").unwrap();
    std::fs::write(dir.join("ws.yaml"), "workspaces: []\n").unwrap();
    let (http, admin) = (free_port(), free_port());
    let cfg = dir.join("gate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "auth_host: workspaces.test\nworkspace_domain: workspaces.test\nlisten:\n  http: 127.0.0.1:{http}\n  admin: 127.0.0.1:{admin}\noidc:\n  issuer: http://127.0.0.1:9\n  client_id: c\n  client_secret_file: secret\nkeys:\n  files: [key]\nworkspaces:\n  file: ws.yaml\n"
        ),
    )
    .unwrap();
    let mut child = clean_env(bin().args(["serve", "--config"]).arg(&cfg))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if healthy(admin) {
            return (child, admin, dir);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the gate did not become healthy within 10 s");
}

/// `GET http://127.0.0.1:<port><path>`: status line and body.
fn admin_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn readiness_does_not_wait_for_the_identity_provider() {
    let (mut child, admin, dir) = serve_without_provider("ready");
    // Ready once the workspaces file is loaded, provider or not.
    let mut ready = String::new();
    for _ in 0..200 {
        ready = admin_get(admin, "/readyz");
        if ready.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains("oidc: false"), "{ready}");
    let metrics = admin_get(admin, "/metrics");
    assert!(
        metrics.lines().any(|l| l == "workspace_gate_oidc_ready 0"),
        "{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sighup_is_ignored_and_sigterm_stops_the_gate() {
    let (mut child, admin, dir) = serve_without_provider("hup");
    let pid = child.id().to_string();
    for _ in 0..3 {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the gate"
    );
    assert!(healthy(admin), "not answering after SIGHUP");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut exited = None;
    for _ in 0..300 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if exited.is_none() {
        let _ = child.kill();
    }
    assert!(
        exited.is_some(),
        "SIGTERM did not stop the gate within 15 s"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
