//! The SSH gateway (`listen.ssh`) with the real OpenSSH client, scp and
//! sftp on one side and a real `sshd` (Debian's openssh-server, started by
//! the test on loopback) standing for the workspace's own sshd on the
//! other. Identities: the real OpenID provider's access tokens (as GitLab
//! personal access tokens) and SSH keys published by the GitLab double's
//! `GET /api/v4/users/:id/keys`.
//!
//! User `1001` (alice) owns ws-1, ws-4 (its sshd is down) and ws-5 (no SSH
//! port); user `1002` (bob) owns ws-3.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::Digest;

use support::gate::{Gate, GateConfig, default_binary};
use support::gitlab::GitlabDouble;
use support::process::{Proc, TestDir, free_port};
use support::provider::{self, Provider};

const DOMAIN: &str = "workspaces.test";
const ALICE: &str = "1001";
const BOB: &str = "1002";

/// Fails with what to install when a program is missing.
fn need(program: &str, package: &str) -> anyhow::Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{program} not found: install Debian's {package} (scripts/install-deps.sh does)")
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    Ok(out)
}

fn keygen(path: &Path) -> anyhow::Result<String> {
    let out = run(Command::new(need("ssh-keygen", "openssh-client")?)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-key", "-f"])
        .arg(path))?;
    if !out.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(std::fs::read_to_string(path.with_extension("pub"))?
        .trim()
        .to_string())
}

fn current_user() -> anyhow::Result<String> {
    let out = run(Command::new("id").arg("-un"))?;
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn wait_port(addr: SocketAddr, what: &str, proc: &mut Proc) -> anyhow::Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        proc.ensure_running()?;
        if start.elapsed() > Duration::from_secs(20) {
            bail!("{what} is not listening on {addr}:\n{}", proc.output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A workspace line of the workspaces file.
struct Ws {
    id: &'static str,
    name: &'static str,
    owner: &'static str,
    /// `host:port` of its sshd; `None`: no SSH port.
    backend: Option<String>,
}

struct Rig {
    dir: TestDir,
    _provider: Provider,
    gitlab: GitlabDouble,
    gate: Gate,
    sshd: std::sync::Mutex<Proc>,
    sshd_port: u16,
    workspaces_file: PathBuf,
    known_hosts: PathBuf,
    alice_key: PathBuf,
    bob_key: PathBuf,
    backend_user: String,
}

impl Rig {
    async fn start(label: &str, extra_ssh: &str) -> anyhow::Result<Rig> {
        support::install_crypto_provider();
        let sshd_bin = need("sshd", "openssh-server")?;
        need("ssh", "openssh-client")?;
        let dir = TestDir::new(label)?;
        let d = dir.path.clone();

        // The "workspace's" sshd: its own host key, and the gate's backend
        // key as the only authorized key of the backend user.
        let backend_user = current_user()?;
        keygen(&d.join("sshd_host_ed25519"))?;
        let gate_backend_pub = keygen(&d.join("gate_backend"))?;
        std::fs::write(d.join("authorized_keys"), format!("{gate_backend_pub}\n"))?;
        let sshd_port = free_port();
        let sshd_config = format!(
            "# written by tests/ssh_gateway.rs\n\
ListenAddress 127.0.0.1:{sshd_port}\n\
HostKey {d}/sshd_host_ed25519\n\
PidFile none\n\
AuthorizedKeysFile {d}/authorized_keys\n\
StrictModes no\n\
UsePAM no\n\
PubkeyAuthentication yes\n\
PasswordAuthentication no\n\
KbdInteractiveAuthentication no\n\
PermitRootLogin prohibit-password\n\
AllowTcpForwarding yes\n\
AllowAgentForwarding yes\n\
X11Forwarding no\n\
PrintMotd no\n\
Subsystem sftp internal-sftp\n\
LogLevel VERBOSE\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), sshd_config)?;
        // sshd run as root wants its privilege-separation directory.
        if backend_user == "root" {
            std::fs::create_dir_all("/run/sshd")?;
        }
        let mut cmd = Command::new(&sshd_bin);
        cmd.arg("-D").arg("-e").arg("-f").arg(d.join("sshd_config"));
        let mut sshd = Proc::spawn("sshd", &d, cmd)?;
        wait_port(format!("127.0.0.1:{sshd_port}").parse()?, "sshd", &mut sshd)?;

        // The gate's host key, made by the binary itself, pinned in the
        // client's known_hosts.
        let out = run(Command::new(default_binary()).args(["keygen", "--ssh"]))?;
        if !out.status.success() {
            bail!(
                "workspace-gate keygen --ssh: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let host_key = d.join("gate_host_key");
        std::fs::write(&host_key, &out.stdout)?;
        set_private(&host_key)?;
        let pub_out = run(Command::new(need("ssh-keygen", "openssh-client")?)
            .arg("-y")
            .arg("-f")
            .arg(&host_key))?;
        if !pub_out.status.success() {
            bail!(
                "the host key from keygen --ssh is not an OpenSSH key: {}",
                String::from_utf8_lossy(&pub_out.stderr)
            );
        }
        let host_pub = String::from_utf8(pub_out.stdout)?.trim().to_string();

        let alice_key = d.join("alice");
        let alice_pub = keygen(&alice_key)?;
        let bob_key = d.join("bob");
        let bob_pub = keygen(&bob_key)?;

        let provider = Provider::start(&d, &["https://workspaces.test/auth/callback".into()])
            .await
            .context("starting the OpenID provider")?;
        let workspaces_file = d.join("workspaces.yaml");
        let rig_ws = Self::default_workspaces(sshd_port);
        write_workspaces(&workspaces_file, &rig_ws)?;
        let gitlab = GitlabDouble::start(&provider.issuer, workspaces_file.clone()).await?;
        gitlab.set_keys(ALICE, std::slice::from_ref(&alice_pub));
        gitlab.set_keys(BOB, &[bob_pub]);

        let ssh_section = format!(
            "  host_key_files: [{host}]\n  backend_user: {backend_user}\n  backend_key_file: {d}/gate_backend\n  recheck_interval: 1s\n  key_cache_ttl: 1s\n{extra_ssh}",
            host = host_key.display(),
            d = d.display(),
        );
        let gate = Gate::start(
            &d,
            &default_binary(),
            &GateConfig {
                auth_host: DOMAIN.into(),
                workspace_domain: DOMAIN.into(),
                public_port: 443,
                issuer: provider.issuer.clone(),
                client_id: provider::CLIENT_ID.into(),
                client_secret: provider.client_secret.clone(),
                workspaces_file: workspaces_file.clone(),
                authorization_mode: "gitlab".into(),
                gitlab_url: Some(gitlab.url()),
                transfer: "query".into(),
                pass_ttl: "12h".into(),
                grpc: false,
                https: false,
                discovery: None,
                ssh: Some(ssh_section),
            },
        )
        .await
        .context("starting workspace-gate")?;
        let ssh_addr = gate.ssh.context("the gate has no SSH listener")?;
        let known_hosts = d.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{} {host_pub}\n", ssh_addr.port()),
        )?;
        Ok(Rig {
            dir,
            _provider: provider,
            gitlab,
            gate,
            sshd: std::sync::Mutex::new(sshd),
            sshd_port,
            workspaces_file,
            known_hosts,
            alice_key,
            bob_key,
            backend_user,
        })
    }

    fn default_workspaces(sshd_port: u16) -> Vec<Ws> {
        let sshd = format!("127.0.0.1:{sshd_port}");
        vec![
            Ws {
                id: "1",
                name: "ws-1",
                owner: ALICE,
                backend: Some(sshd.clone()),
            },
            Ws {
                id: "3",
                name: "ws-3",
                owner: BOB,
                backend: Some(sshd),
            },
            Ws {
                id: "4",
                name: "ws-4",
                owner: ALICE,
                backend: Some(format!("127.0.0.1:{}", closed_port())),
            },
            Ws {
                id: "5",
                name: "ws-5",
                owner: ALICE,
                backend: None,
            },
        ]
    }

    /// Restarts the workspace's sshd on the same port with a new host key,
    /// as a workspace restarted from an image that makes its key at start.
    fn new_sshd_host_key(&self) -> anyhow::Result<()> {
        let d = &self.dir.path;
        self.sshd.lock().unwrap().kill();
        std::fs::remove_file(d.join("sshd_host_ed25519"))?;
        std::fs::remove_file(d.join("sshd_host_ed25519.pub"))?;
        keygen(&d.join("sshd_host_ed25519"))?;
        let mut cmd = Command::new(need("sshd", "openssh-server")?);
        cmd.arg("-D").arg("-e").arg("-f").arg(d.join("sshd_config"));
        let mut sshd = Proc::spawn("sshd-run2", d, cmd)?;
        wait_port(
            format!("127.0.0.1:{}", self.sshd_port).parse()?,
            "sshd",
            &mut sshd,
        )?;
        *self.sshd.lock().unwrap() = sshd;
        Ok(())
    }

    fn port(&self) -> u16 {
        self.gate.ssh.expect("ssh listener").port()
    }

    /// Options every client run shares: no user config, the gate's host key
    /// pinned, no agent, bounded waits.
    fn common(&self, cmd: &mut Command) {
        cmd.args(["-F", "/dev/null"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DISPLAY");
    }

    /// `ssh` logging in with `key` (BatchMode: no prompt).
    fn ssh_key(&self, key: &Path, user: &str) -> Command {
        let mut cmd = Command::new("ssh");
        self.common(&mut cmd);
        cmd.arg("-p")
            .arg(self.port().to_string())
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "PreferredAuthentications=publickey",
            ])
            .arg("-i")
            .arg(key)
            .arg(format!("{user}@127.0.0.1"));
        cmd
    }

    /// `ssh` answering the password or keyboard-interactive prompt with
    /// `token` through SSH_ASKPASS.
    fn ssh_token(&self, method: &str, token: &str, user: &str) -> anyhow::Result<Command> {
        let token_file = self
            .dir
            .path
            .join(format!("token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&token_file, token)?;
        set_private(&token_file)?;
        let askpass = self
            .dir
            .path
            .join(format!("askpass-{}", uuid::Uuid::new_v4()));
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\ncat '{}'\n", token_file.display()),
        )?;
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let mut cmd = Command::new("ssh");
        self.common(&mut cmd);
        cmd.arg("-p")
            .arg(self.port().to_string())
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .arg("-o")
            .arg(format!("PreferredAuthentications={method}"))
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .arg(format!("{user}@127.0.0.1"));
        Ok(cmd)
    }

    /// alice's key logged in to `user`, running a long command; returns
    /// once the command has started in the workspace.
    fn open_session(&self, user: &str) -> anyhow::Result<std::process::Child> {
        let mut open = self
            .ssh_key(&self.alice_key, user)
            .arg("echo ready; sleep 120")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut first = [0u8; 6];
        std::io::Read::read_exact(open.stdout.as_mut().unwrap(), &mut first)?;
        assert_eq!(&first, b"ready\n");
        Ok(open)
    }

    async fn token(&mut self, user: &str) -> anyhow::Result<String> {
        Ok(self._provider.user_tokens(user).await?.access_token)
    }

    fn write(&self, list: &[Ws]) -> anyhow::Result<()> {
        write_workspaces(&self.workspaces_file, list)
    }

    /// Asserts that the series starting with `prefix` add up to at least
    /// `n`.
    async fn counted(&self, prefix: &str, n: f64) {
        let got = self.metric(prefix).await;
        assert!(got >= n, "{prefix}: {got}, expected at least {n}");
    }

    async fn metric(&self, prefix: &str) -> f64 {
        let text = self.gate.metrics().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Waits until the gate ends an open session; its output.
async fn ended(mut open: std::process::Child, cause: &str) -> anyhow::Result<Output> {
    let start = Instant::now();
    while open.try_wait()?.is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = open.kill();
            bail!("the session outlived {cause} by 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = open.wait_with_output()?;
    assert!(!out.status.success(), "an ended session exited 0");
    Ok(out)
}

fn set_private(p: &Path) -> anyhow::Result<()> {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// A loopback port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write_workspaces(path: &Path, list: &[Ws]) -> anyhow::Result<()> {
    let mut out = String::from("workspaces:\n");
    for w in list {
        out.push_str(&format!(
            "  - id: \"{}\"\n    name: {}\n    namespace: workspaces\n    owner: {{ id: \"{}\", username: \"{}\" }}\n    hosts: [{}.{DOMAIN}]\n",
            w.id, w.name, w.owner, w.owner, w.name
        ));
        if let Some(b) = &w.backend {
            out.push_str(&format!("    ssh: {{ backend: \"{b}\" }}\n"));
        }
    }
    // Written whole, then renamed: the gate never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that the client's stderr (what the user reads) says `needle`.
fn said(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(needle),
        "the user was not told {needle:?}: {stderr}"
    );
}

fn assert_refused(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(255),
        "{what}: expected ssh to be refused (exit 255), got {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    said(out, "Permission denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_login_runs_exec_shell_and_exit_status_as_the_backend_user() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-key-exec", "").await?;
    let out = run(rig
        .ssh_key(&rig.alice_key, "ws-1")
        .arg("echo out-$((6*7)); whoami"))?;
    assert!(out.status.success(), "exec failed: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("out-42\n{}\n", rig.backend_user),
        "the command ran in the workspace's sshd as the backend user"
    );

    // The exit status of the remote command comes back.
    let out = run(rig.ssh_key(&rig.alice_key, "ws-1").arg("exit 7"))?;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));

    // A host or <port>-<name> label names the workspace as well.
    for user in ["ws-1.workspaces.test", "WS-1"] {
        let out = run(rig.ssh_key(&rig.alice_key, user).arg("echo named"))?;
        assert_eq!(
            text(&out.stdout),
            "named\n",
            "user {user}: {}",
            text(&out.stderr)
        );
    }

    // An interactive shell on a pty.
    let mut child = rig
        .ssh_key(&rig.alice_key, "ws-1")
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo shell-$((6*7)) $TERM\nexit\n")?;
    let out = child.wait_with_output()?;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("shell-42"),
        "no shell output; stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );

    rig.counted(
        "workspace_gate_ssh_auth_total{method=\"publickey\",result=\"allowed\"",
        5.0,
    )
    .await;
    // One connection log line per session, with who, which workspace, how.
    let logs = rig.gate.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("\"ssh connection\"") && l.contains("\"workspace\":\"ws-1\""))
        .with_context(|| format!("no connection log line:\n{logs}"))?;
    for field in [
        "\"user_id\":\"1001\"",
        "\"method\":\"publickey\"",
        "\"bytes_down\":",
        "\"duration_ms\":",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn scp_and_sftp_move_100_mib_both_ways_intact() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-copy", "").await?;
    let d = &rig.dir.path;
    let big = d.join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big)?);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..100 {
            rand::fill(&mut buf[..]);
            f.write_all(&buf)?;
        }
    }
    let want = sha256_file(&big)?;
    let scp = |legacy: bool| {
        let mut cmd = Command::new("scp");
        rig.common(&mut cmd);
        cmd.arg("-P")
            .arg(rig.port().to_string())
            .args(["-o", "BatchMode=yes", "-q"])
            .arg("-i")
            .arg(&rig.alice_key);
        if legacy {
            // The classic scp protocol (an exec of `scp -t`), not SFTP.
            cmd.arg("-O");
        }
        cmd
    };
    for legacy in [false, true] {
        let up = d.join(format!("up-{legacy}.bin"));
        let out = run(scp(legacy)
            .arg(&big)
            .arg(format!("ws-1@127.0.0.1:{}", up.display())))?;
        assert!(
            out.status.success(),
            "scp up (legacy {legacy}): {}",
            text(&out.stderr)
        );
        assert_eq!(
            sha256_file(&up)?,
            want,
            "scp up (legacy {legacy}) changed the file"
        );
        let down = d.join(format!("down-{legacy}.bin"));
        let out = run(scp(legacy)
            .arg(format!("ws-1@127.0.0.1:{}", big.display()))
            .arg(&down))?;
        assert!(
            out.status.success(),
            "scp down (legacy {legacy}): {}",
            text(&out.stderr)
        );
        assert_eq!(
            sha256_file(&down)?,
            want,
            "scp down (legacy {legacy}) changed the file"
        );
    }

    let batch = d.join("sftp.batch");
    std::fs::write(
        &batch,
        format!(
            "put {big} {d}/sftp-up.bin\nget {big} {d}/sftp-down.bin\nls -l {d}/sftp-up.bin\n",
            big = big.display(),
            d = d.display()
        ),
    )?;
    let mut cmd = Command::new("sftp");
    rig.common(&mut cmd);
    let out = run(cmd
        .arg("-P")
        .arg(rig.port().to_string())
        .arg("-i")
        .arg(&rig.alice_key)
        .arg("-b")
        .arg(&batch)
        .arg("ws-1@127.0.0.1"))?;
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert_eq!(sha256_file(&d.join("sftp-up.bin"))?, want);
    assert_eq!(sha256_file(&d.join("sftp-down.bin"))?, want);

    // Every byte was counted, both ways (six copies of 100 MiB and more).
    let up = rig
        .metric("workspace_gate_ssh_bytes_total{direction=\"up\"")
        .await;
    let down = rig
        .metric("workspace_gate_ssh_bytes_total{direction=\"down\"")
        .await;
    assert!(up >= 3.0 * 100.0 * 1048576.0, "bytes up {up}");
    assert!(down >= 3.0 * 100.0 * 1048576.0, "bytes down {down}");
    Ok(())
}

/// A tiny HTTP server in the "workspace": answers every request with a
/// fixed body.
fn http_server() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let body = "hello from the workspace";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread")]
async fn local_forwarding_reaches_the_workspace_and_nothing_else() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-forward", "").await?;
    let app = http_server()?;
    let local = free_port();
    let mut fwd = rig
        .ssh_key(&rig.alice_key, "ws-1")
        .args(["-N", "-o", "ExitOnForwardFailure=yes"])
        .arg("-L")
        .arg(format!("127.0.0.1:{local}:localhost:{app}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let start = Instant::now();
    let body = loop {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{local}/")).send().await {
            break r.text().await?;
        }
        if start.elapsed() > Duration::from_secs(20) || fwd.try_wait()?.is_some() {
            let _ = fwd.kill();
            bail!(
                "the forward never answered: {}",
                text(&fwd.wait_with_output()?.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body, "hello from the workspace");
    let _ = fwd.kill();
    let _ = fwd.wait();

    // -L to anything but the workspace itself is refused.
    let local2 = free_port();
    let mut other = rig
        .ssh_key(&rig.alice_key, "ws-1")
        .args(["-N", "-o", "ExitOnForwardFailure=yes"])
        .arg("-L")
        .arg(format!("127.0.0.1:{local2}:{}:{app}", "192.0.2.1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut probe = tokio::net::TcpStream::connect(("127.0.0.1", local2)).await?;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read(&mut probe, &mut buf),
    )
    .await
    .context("the refused forward never closed")?
    .unwrap_or(0);
    assert_eq!(n, 0, "a forward to another host carried data");
    let _ = other.kill();
    let out = other.wait_with_output()?;
    said(&out, "forwards to the workspace itself only");
    rig.counted(
        "workspace_gate_ssh_refused_total{reason=\"direct_tcpip_host\"",
        1.0,
    )
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_forwarding_is_refused_unless_configured() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-remote-fwd", "").await?;
    let out = run(rig
        .ssh_key(&rig.alice_key, "ws-1")
        .args(["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"])
        .arg("true"))?;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    said(&out, "remote port forwarding failed");
    rig.counted(
        "workspace_gate_ssh_refused_total{reason=\"remote_forwarding\"",
        1.0,
    )
    .await;
    drop(rig);

    // Turned on, a port opened in the workspace reaches the user's side.
    let rig = Rig::start("ssh-remote-fwd-on", "  allow_remote_forwarding: true\n").await?;
    let app = http_server()?;
    let remote = free_port();
    let fetch = format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{remote}; printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"
    );
    let out = run(rig
        .ssh_key(&rig.alice_key, "ws-1")
        .args(["-o", "ExitOnForwardFailure=yes"])
        .arg("-R")
        .arg(format!("127.0.0.1:{remote}:127.0.0.1:{app}"))
        .arg(fetch))?;
    assert!(
        text(&out.stdout).contains("hello from the workspace"),
        "the remote forward carried nothing: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn token_logs_in_by_password_and_keyboard_interactive() -> anyhow::Result<()> {
    let mut rig = Rig::start("ssh-token", "").await?;
    let token = rig.token(ALICE).await?;
    for method in ["password", "keyboard-interactive"] {
        let out = run(rig.ssh_token(method, &token, "ws-1")?.arg("echo via-token"))?;
        assert!(out.status.success(), "{method}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "via-token\n", "{method}");
    }
    // A token that is not one.
    let out = run(rig
        .ssh_token("password", "not-a-token", "ws-1")?
        .arg("true"))?;
    assert_refused(&out, "an invalid token");
    rig.counted(
        "workspace_gate_ssh_auth_total{method=\"token\",result=\"allowed\"",
        2.0,
    )
    .await;
    rig.counted(
        "workspace_gate_ssh_auth_total{method=\"token\",result=\"invalid_token\"",
        1.0,
    )
    .await;

    // Neither the token nor any private key is ever logged.
    let logs = rig.gate.logs();
    assert!(!logs.contains(&token), "the token is in the gate's logs");
    let key_body: String = std::fs::read_to_string(&rig.alice_key)?
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !logs.contains(&key_body[..40]),
        "a private key is in the gate's logs"
    );
    let login = logs
        .lines()
        .find(|l| l.contains("\"ssh connection\"") && l.contains("\"method\":\"token\""))
        .with_context(|| format!("no connection log line for the token login:\n{logs}"))?;
    assert!(login.contains("\"user\":\"1001\""), "{login}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_workspace_is_refused_for_every_method() -> anyhow::Result<()> {
    let mut rig = Rig::start("ssh-other-user", "").await?;
    // bob's key, bob's token: ws-1 is alice's.
    let out = run(rig.ssh_key(&rig.bob_key, "ws-1").arg("true"))?;
    assert_refused(&out, "bob's key to alice's workspace");
    let bob_token = rig.token(BOB).await?;
    for method in ["password", "keyboard-interactive"] {
        let out = run(rig.ssh_token(method, &bob_token, "ws-1")?.arg("true"))?;
        assert_refused(
            &out,
            &format!("bob's token by {method} to alice's workspace"),
        );
    }
    // alice's key to bob's workspace, while bob's own key works there.
    let out = run(rig.ssh_key(&rig.alice_key, "ws-3").arg("true"))?;
    assert_refused(&out, "alice's key to bob's workspace");
    let out = run(rig.ssh_key(&rig.bob_key, "ws-3").arg("echo bob"))?;
    assert_eq!(text(&out.stdout), "bob\n", "{}", text(&out.stderr));
    rig.counted(
        "workspace_gate_ssh_auth_total{method=\"token\",result=\"denied\"",
        2.0,
    )
    .await;
    rig.counted(
        "workspace_gate_ssh_auth_total{method=\"publickey\",result=\"denied\"",
        2.0,
    )
    .await;
    // Each refused connection leaves one log line saying what and why.
    let logs = rig.gate.logs();
    assert!(
        logs.lines().any(|l| l.contains("\"ssh login refused\"")
            && l.contains("\"user\":\"ws-1\"")
            && l.contains("\"reason\":\"denied\"")),
        "no refusal log line:\n{logs}"
    );

    // An unknown workspace and bad user names are refused.
    for user in ["ws-404", "no.such.host", "ws-1..x"] {
        let out = run(rig.ssh_key(&rig.alice_key, user).arg("true"))?;
        assert_refused(&out, &format!("user {user}"));
    }
    let token = rig.token(ALICE).await?;
    let out = run(rig.ssh_token("password", &token, "ws-404")?.arg("true"))?;
    assert_refused(&out, "a token for an unknown workspace");
    rig.counted(
        "workspace_gate_ssh_auth_total{method=\"none\",result=\"unknown_workspace\"",
        1.0,
    )
    .await;

    // When neither a key nor a token gets in, the prompt says why and how.
    let out = run(rig
        .ssh_token("keyboard-interactive", "", "ws-1")?
        .args(["-o", "LogLevel=INFO"])
        .arg("true"))?;
    assert_refused(&out, "an empty answer at the prompt");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Workspace ws-1 belongs to 1001") && stderr.contains("SSH Keys"),
        "the prompt did not explain: {stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_key_is_refused_and_ends_open_sessions() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-removed-key", "").await?;
    let open = rig.open_session("ws-1")?;

    // alice removes the key in GitLab.
    rig.gitlab.set_keys(ALICE, &[]);
    let out = ended(open, "the removed key").await?;
    said(&out, "the SSH key you logged in with was removed");
    let out = run(rig.ssh_key(&rig.alice_key, "ws-1").arg("true"))?;
    assert_refused(&out, "a removed key");
    rig.counted("workspace_gate_ssh_ended_total", 1.0).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_the_workspace_ends_its_sessions() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-ws-removed", "").await?;
    let open = rig.open_session("ws-1")?;

    let rest: Vec<Ws> = Rig::default_workspaces(rig.sshd_port)
        .into_iter()
        .filter(|w| w.name != "ws-1")
        .collect();
    rig.write(&rest)?;
    let out = ended(open, "its workspace").await?;
    said(&out, "workspace ws-1 was removed");
    // And it cannot be reached again.
    let out = run(rig.ssh_key(&rig.alice_key, "ws-1").arg("true"))?;
    assert_refused(&out, "a removed workspace");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_or_missing_sshd_is_a_clear_message() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-broken-backend", "").await?;
    // ws-4's sshd is not listening.
    let out = run(rig.ssh_key(&rig.alice_key, "ws-4").arg("true"))?;
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("workspace-gate: workspace ws-4"),
        "no clear message: {stderr}"
    );
    rig.counted("workspace_gate_ssh_backend_failures_total", 1.0)
        .await;
    // ws-5 has no SSH port: refused at login.
    let out = run(rig.ssh_key(&rig.alice_key, "ws-5").arg("true"))?;
    assert_refused(&out, "a workspace without an SSH port");
    // The sshd refusing the gate's key (the backend key removed) is said
    // too, and the gate's key is not the user's problem to fix.
    std::fs::write(rig.dir.path.join("authorized_keys"), "")?;
    let out = run(rig.ssh_key(&rig.alice_key, "ws-1").arg("true"))?;
    assert_ne!(out.status.code(), Some(0));
    said(&out, "workspace-gate: workspace ws-1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_at_the_idle_limit() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-idle", "  idle_timeout: 2s\n").await?;
    let open = rig
        .ssh_key(&rig.alice_key, "ws-1")
        .args(["-o", "ServerAliveInterval=0"])
        .arg("sleep 600")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = ended(open, "the idle limit").await?;
    said(&out, "idle");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn busy_sessions_end_at_the_session_limit() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-max-session", "  max_session: 3s\n").await?;
    // Never idle: a line every 200 ms.
    let open = rig
        .ssh_key(&rig.alice_key, "ws-1")
        .arg("while true; do echo tick; sleep 0.2; done")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = ended(open, "the session limit").await?;
    assert!(
        text(&out.stdout).matches("tick").count() >= 2,
        "the session was not busy: {}",
        text(&out.stdout)
    );
    said(&out, "ssh.max_session");
    rig.counted("workspace_gate_ssh_ended_total{reason=\"max_session\"", 1.0)
        .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_forwarding_reaches_the_workspace_when_asked() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-agent", "").await?;
    let sock = rig.dir.path.join("agent.sock");
    let mut agent = Proc::spawn("ssh-agent", &rig.dir.path, {
        let mut c = Command::new(need("ssh-agent", "openssh-client")?);
        c.arg("-D").arg("-a").arg(&sock);
        c
    })?;
    let start = Instant::now();
    while !sock.exists() {
        agent.ensure_running()?;
        if start.elapsed() > Duration::from_secs(10) {
            bail!("ssh-agent made no socket");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run(Command::new("ssh-add")
        .arg(&rig.bob_key)
        .env("SSH_AUTH_SOCK", &sock))?;
    assert!(out.status.success(), "ssh-add: {}", text(&out.stderr));

    // With -A the workspace sees the user's agent (bob's key in it)...
    let out = run(rig
        .ssh_key(&rig.alice_key, "ws-1")
        .env("SSH_AUTH_SOCK", &sock)
        .arg("-A")
        .arg("ssh-add -L"))?;
    let bob_pub = std::fs::read_to_string(rig.bob_key.with_extension("pub"))?;
    let bob_material = bob_pub.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        text(&out.stdout).contains(bob_material),
        "the forwarded agent was not reachable: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // ...and without it, no agent.
    let out = run(rig
        .ssh_key(&rig.alice_key, "ws-1")
        .env("SSH_AUTH_SOCK", &sock)
        .arg("-a")
        .arg("ssh-add -L"))?;
    assert!(!text(&out.stdout).contains(bob_material));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_sshd_host_key_is_refused_after_the_first_use() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-host-key-pin", "").await?;
    let out = run(rig.ssh_key(&rig.alice_key, "ws-1").arg("echo first"))?;
    assert_eq!(text(&out.stdout), "first\n", "{}", text(&out.stderr));
    rig.new_sshd_host_key()?;
    let out = run(rig.ssh_key(&rig.alice_key, "ws-1").arg("echo second"))?;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !text(&out.stdout).contains("second"),
        "the gate used an sshd with another key"
    );
    said(
        &out,
        "presented a host key other than the one it had before",
    );
    rig.counted(
        "workspace_gate_ssh_backend_failures_total{reason=\"host_key\"",
        1.0,
    )
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_change_ends_the_old_owners_sessions() -> anyhow::Result<()> {
    let rig = Rig::start("ssh-owner-change", "").await?;
    let open = rig.open_session("ws-1")?;
    // ws-1 now belongs to bob.
    let moved: Vec<Ws> = Rig::default_workspaces(rig.sshd_port)
        .into_iter()
        .map(|w| {
            if w.name == "ws-1" {
                Ws { owner: BOB, ..w }
            } else {
                w
            }
        })
        .collect();
    rig.write(&moved)?;
    let out = ended(open, "the owner change").await?;
    said(&out, "workspace ws-1 has a new owner");
    let out = run(rig.ssh_key(&rig.alice_key, "ws-1").arg("true"))?;
    assert_refused(&out, "the old owner's key");
    let out = run(rig.ssh_key(&rig.bob_key, "ws-1").arg("echo new-owner"))?;
    assert_eq!(text(&out.stdout), "new-owner\n", "{}", text(&out.stderr));
    Ok(())
}
