//! Connection limits of every listener, against the real binary on
//! 127.0.0.1: a client that never finishes its request header is closed
//! after `listen.header_read_timeout`, an idle kept connection after
//! `listen.idle_timeout`, and SIGTERM ends the process within
//! `listen.shutdown_grace` whatever its clients do, after answering the
//! requests in flight. And a stdout nobody reads never holds up a check.
//!
//! The limits are set through the environment (`WORKSPACE_GATE_LISTEN_*`),
//! which a build that does not know them ignores: `WORKSPACE_GATE_BIN`
//! runs these tests against such a build, and they fail there on behaviour.
//! Waits are bounded generously; nothing asserts on speed.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use support::process::free_port;
use support::tls::TestCa;

/// Longer than any limit the tests set: what does not happen by then does
/// not happen.
const PATIENCE: Duration = Duration::from_secs(15);

struct Gate {
    child: Child,
    http: SocketAddr,
    admin: SocketAddr,
    grpc: SocketAddr,
    https: SocketAddr,
    ca: TestCa,
    dir: PathBuf,
    /// Held, never read, when the test wants a blocked stdout.
    _stdout: Option<std::process::ChildStdout>,
}

struct Options<'a> {
    header_read: &'a str,
    idle: &'a str,
    grace: &'a str,
    /// `authorization.gitlab_url`; owner annotations without it.
    gitlab: Option<SocketAddr>,
    /// stdout into a pipe that is never read (else a file).
    blocked_stdout: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            header_read: "1s",
            idle: "60s",
            grace: "10s",
            gitlab: None,
            blocked_stdout: false,
        }
    }
}

fn addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

impl Gate {
    async fn start(tag: &str, o: Options<'_>) -> Gate {
        let dir = std::env::temp_dir().join(format!("wg-limits-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::issue(&dir, &["127.0.0.1".to_string()]).unwrap();
        std::fs::write(
            dir.join("key"),
            workspace_gate::session::keyring::generate_key(),
        )
        .unwrap();
        std::fs::write(dir.join("secret"), "s").unwrap();
        std::fs::write(
            dir.join("ws.yaml"),
            "workspaces:\n- {id: '1', name: ws-1, namespace: ns, owner: {id: u1, username: u1}, hosts: [ws-1.workspaces.test]}\n",
        )
        .unwrap();
        let (http, admin, grpc, https) = (addr(), addr(), addr(), addr());
        let authz = match o.gitlab {
            Some(g) => format!("{{mode: gitlab, gitlab_url: 'http://{g}'}}"),
            None => "{mode: owner-annotation}".to_string(),
        };
        let d = dir.display();
        std::fs::write(
            dir.join("gate.yaml"),
            format!(
                "auth_host: workspaces.test\nworkspace_domain: workspaces.test\n\
listen: {{http: '{http}', admin: '{admin}', grpc: '{grpc}', https: '{https}'}}\n\
tls: {{cert_file: {d}/tls.crt, key_file: {d}/tls.key}}\n\
oidc: {{issuer: 'http://127.0.0.1:9', client_id: c, client_secret_file: {d}/secret}}\n\
keys: {{files: [{d}/key]}}\nworkspaces: {{source: file, file: {d}/ws.yaml}}\n\
authorization: {authz}\nlog: {{format: json, level: info}}\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(support::gate::default_binary());
        cmd.arg("serve").arg("--config").arg(dir.join("gate.yaml"));
        for (k, _) in std::env::vars() {
            if k.starts_with("WORKSPACE_GATE_") || k.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(k);
            }
        }
        cmd.env("WORKSPACE_GATE_LISTEN_HEADER_READ_TIMEOUT", o.header_read)
            .env("WORKSPACE_GATE_LISTEN_IDLE_TIMEOUT", o.idle)
            .env("WORKSPACE_GATE_LISTEN_SHUTDOWN_GRACE", o.grace)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("gate.stderr")).unwrap());
        if o.blocked_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(std::fs::File::create(dir.join("gate.stdout")).unwrap());
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take();
        let mut gate = Gate {
            child,
            http,
            admin,
            grpc,
            https,
            ca,
            dir,
            _stdout: stdout,
        };
        let start = Instant::now();
        while get(admin, "/readyz")
            .await
            .is_none_or(|r| !r.starts_with("HTTP/1.1 200"))
        {
            if start.elapsed() > PATIENCE {
                gate.child.kill().unwrap();
                gate.child.wait().unwrap();
                panic!("the gate did not become ready\n{}", gate.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gate
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("gate.stdout"), read("gate.stderr"))
    }

    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits (bounded) for the process to exit; `None` if it did not.
    async fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    async fn tls(&self, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut cfg = self.ca.rustls_client_config().unwrap();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(self.https).await.unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect("127.0.0.1".try_into().unwrap(), tcp)
            .await
            .unwrap()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `GET <path>` on a connection of its own: the whole answer, or `None`.
async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    tokio::time::timeout(PATIENCE, s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    Some(out)
}

/// True when the peer closes `s` within [`PATIENCE`] (whatever it sends
/// before is read and dropped).
async fn closed_by_peer(s: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        let read = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return true;
        }
    }
    false
}

/// Reads one HTTP/1.1 answer with a `Content-Length` from a kept
/// connection; returns its status line.
async fn read_answer(s: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut byte))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    head.lines().next().unwrap().to_string()
}

const HALF_HEADER: &[u8] = b"GET /check/traefik HTTP/1.1\r\nHost: x\r\nX-Forwarded-Ho";

/// An HTTP/2 connection preface, its SETTINGS and the start of a HEADERS
/// frame whose rest never comes.
fn half_h2_request() -> Vec<u8> {
    let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    b.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    // HEADERS, 64 bytes announced, END_HEADERS, stream 1; 8 sent.
    b.extend_from_slice(&[0, 0, 64, 1, 4, 0, 0, 0, 1]);
    b.extend_from_slice(&[0x82; 8]);
    b
}

#[tokio::test]
async fn a_half_sent_header_is_closed_after_the_header_timeout_on_every_listener() {
    let gate = Gate::start("header", Options::default()).await;
    for addr in [gate.http, gate.admin] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(HALF_HEADER).await.unwrap();
        assert!(closed_by_peer(&mut s).await, "{addr}: still open");
    }
    // A connection that sends nothing at all.
    let mut s = TcpStream::connect(gate.http).await.unwrap();
    assert!(closed_by_peer(&mut s).await, "silent connection still open");
    // A kept connection: one answer, then half of the next header.
    let mut s = TcpStream::connect(gate.admin).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_answer(&mut s).await.starts_with("HTTP/1.1 200"));
    s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
    assert!(closed_by_peer(&mut s).await, "kept connection still open");
    // gRPC (HTTP/2 with prior knowledge).
    let mut s = TcpStream::connect(gate.grpc).await.unwrap();
    s.write_all(&half_h2_request()).await.unwrap();
    assert!(closed_by_peer(&mut s).await, "listen.grpc: still open");
    // HTTPS, over HTTP/1.1 and HTTP/2.
    let mut s = gate.tls(b"http/1.1").await;
    s.write_all(HALF_HEADER).await.unwrap();
    assert!(
        closed_by_peer(&mut s).await,
        "listen.https (h1): still open"
    );
    let mut s = gate.tls(b"h2").await;
    s.write_all(&half_h2_request()).await.unwrap();
    assert!(
        closed_by_peer(&mut s).await,
        "listen.https (h2): still open"
    );
    // A plain TCP connection to the HTTPS port that never starts TLS.
    let mut s = TcpStream::connect(gate.https).await.unwrap();
    s.write_all(b"\x16\x03\x01").await.unwrap();
    assert!(
        closed_by_peer(&mut s).await,
        "listen.https (handshake): still open"
    );
}

/// One request on a kept HTTP/1.1 connection, answered.
async fn one_answer(s: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let status = read_answer(s).await;
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
}

/// One gRPC-shaped request over HTTP/2 on `io`, answered; returns once the
/// server has closed the connection, or panics after [`PATIENCE`].
async fn h2_request_then_closed<T>(io: T, what: &str)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut client, conn) = h2::client::handshake(io).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::post("http://127.0.0.1/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (answer, mut body) = client.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let answer = tokio::time::timeout(PATIENCE, answer)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer"))
        .unwrap();
    drop(answer);
    assert!(
        tokio::time::timeout(PATIENCE, conn).await.is_ok(),
        "{what}: idle connection still open"
    );
}

#[tokio::test]
async fn an_idle_kept_connection_is_closed_after_the_idle_timeout_on_every_listener() {
    let gate = Gate::start(
        "idle",
        Options {
            header_read: "1s",
            idle: "2s",
            ..Options::default()
        },
    )
    .await;
    for addr in [gate.http, gate.admin] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        one_answer(&mut s).await;
        assert!(
            closed_by_peer(&mut s).await,
            "{addr}: idle connection still open"
        );
    }
    let mut s = gate.tls(b"http/1.1").await;
    one_answer(&mut s).await;
    assert!(
        closed_by_peer(&mut s).await,
        "listen.https (h1): still open"
    );
    h2_request_then_closed(gate.tls(b"h2").await, "listen.https (h2)").await;
    h2_request_then_closed(TcpStream::connect(gate.grpc).await.unwrap(), "listen.grpc").await;
}

#[tokio::test]
async fn sigterm_ends_the_process_within_the_grace_period_whatever_its_clients_do() {
    // Limits longer than the test: only the shutdown can close these.
    let mut gate = Gate::start(
        "sigterm",
        Options {
            header_read: "10m",
            idle: "10m",
            grace: "2s",
            ..Options::default()
        },
    )
    .await;
    let mut open = Vec::new();
    for addr in [gate.http, gate.admin] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(HALF_HEADER).await.unwrap();
        open.push(s);
    }
    let mut kept = TcpStream::connect(gate.http).await.unwrap();
    one_answer(&mut kept).await;
    let mut s = TcpStream::connect(gate.grpc).await.unwrap();
    s.write_all(&half_h2_request()).await.unwrap();
    open.push(s);
    let mut tls = gate.tls(b"http/1.1").await;
    tls.write_all(HALF_HEADER).await.unwrap();
    gate.sigterm();
    let status = gate.exited(PATIENCE).await;
    assert!(
        status.is_some(),
        "still running {PATIENCE:?} after SIGTERM\n{}",
        gate.logs()
    );
    assert!(status.unwrap().success(), "{}", gate.logs());
    drop((open, kept, tls));
}

/// A GitLab API that answers every call after `delay`, telling `called`
/// when a call came in.
async fn slow_gitlab(delay: Duration) -> (SocketAddr, tokio::sync::mpsc::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (called, calls) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let called = called.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let _ = called.send(()).await;
                tokio::time::sleep(delay).await;
                let body = r#"{"data":{"currentUser":null}}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, calls)
}

#[tokio::test]
async fn a_request_in_flight_at_sigterm_is_answered_and_nothing_new_is_accepted() {
    let (gitlab, mut calls) = slow_gitlab(Duration::from_millis(1500)).await;
    let mut gate = Gate::start(
        "inflight",
        Options {
            header_read: "10m",
            idle: "10m",
            grace: "10s",
            gitlab: Some(gitlab),
            ..Options::default()
        },
    )
    .await;
    // A client that never finishes its header is connected throughout.
    let mut slow = TcpStream::connect(gate.http).await.unwrap();
    slow.write_all(HALF_HEADER).await.unwrap();
    // A check whose bearer token the gate asks GitLab about.
    let mut check = TcpStream::connect(gate.http).await.unwrap();
    check
        .write_all(
            b"GET /check/traefik HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Proto: https\r\n\
X-Forwarded-Host: ws-1.workspaces.test\r\nX-Forwarded-Uri: /\r\nX-Forwarded-Method: GET\r\n\
Authorization: Bearer glpat-in-flight\r\n\r\n",
        )
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, calls.recv())
        .await
        .expect("the check reached GitLab")
        .unwrap();
    gate.sigterm();
    // New connections are refused once the listener is closed.
    let start = Instant::now();
    while TcpStream::connect(gate.http).await.is_ok() {
        assert!(start.elapsed() < PATIENCE, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = read_answer(&mut check).await;
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    let exited = gate.exited(PATIENCE).await;
    assert!(
        exited.is_some(),
        "still running {PATIENCE:?} after SIGTERM\n{}",
        gate.logs()
    );
    drop(slow);
}

#[tokio::test]
async fn a_stdout_nobody_reads_drops_log_lines_and_never_holds_up_checks() {
    let mut gate = Gate::start(
        "stdout",
        Options {
            blocked_stdout: true,
            ..Options::default()
        },
    )
    .await;
    // Every page request writes an access-log line: far more log than the
    // pipe and the writer's queue hold, and all of it answered well within
    // the bound (a blocking writer hangs every request past 64 KiB, for
    // good).
    let requests = async {
        for i in 0..2000 {
            let answer = get(gate.http, &format!("/no-such-page-{i}")).await;
            assert!(
                answer.is_some_and(|a| a.starts_with("HTTP/1.1 ")),
                "request {i} unanswered"
            );
        }
        let check = get(gate.http, "/check/traefik").await;
        assert!(
            check.is_some_and(|a| a.starts_with("HTTP/1.1 ")),
            "check unanswered"
        );
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(30), requests)
            .await
            .is_ok(),
        "requests held up by the log output"
    );
    let metrics = get(gate.admin, "/metrics").await.expect("metrics answer");
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("workspace_gate_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no drop counter in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "{metrics}");
    // The exit does not wait for the blocked output either.
    gate.sigterm();
    assert!(
        gate.exited(PATIENCE).await.is_some(),
        "still running after SIGTERM with a blocked stdout"
    );
}
