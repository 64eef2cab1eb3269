//! `listen.https`: the public routes over TLS with HTTP/2 and HTTP/1.1, and
//! a certificate that follows its files (renewals) without a restart, while
//! broken files keep the previous certificate in service.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use support::tls::TestCa;
use workspace_gate::config::Config;
use workspace_gate::session::signed::sign;
use workspace_gate::session::{Identity, Keyring, PassClaims, TokenKind};

struct Running {
    https: SocketAddr,
    admin: SocketAddr,
    /// A valid pass cookie value for ws-1.workspaces.test.
    pass: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The gate in this process, with `listen.https` serving `dir/tls.crt`
/// and closing connections after `max_age`.
async fn start(dir: &Path, max_age: &str) -> Running {
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
    std::fs::write(
        dir.join("gate.yaml"),
        format!("auth_host: workspaces.test\nworkspace_domain: workspaces.test\n\
listen: {{http: '127.0.0.1:0', admin: '127.0.0.1:0', https: '127.0.0.1:0', https_max_connection_age: {max_age}}}\n\
tls: {{cert_file: tls.crt, key_file: tls.key}}\n\
oidc: {{issuer: 'http://127.0.0.1:9', client_id: c, client_secret_file: secret}}\n\
keys: {{files: [key]}}\nworkspaces: {{source: file, file: ws.yaml}}\n\
authorization: {{mode: owner-annotation}}\nlog: {{level: warn}}\n"),
    )
    .unwrap();
    let cfg = Config::load(Some(&dir.join("gate.yaml")), &|_| None).unwrap();
    let keyring = Keyring::new(&cfg.keys).unwrap();
    let now = workspace_gate::server::now();
    let pass = sign(
        &keyring,
        TokenKind::Pass,
        &PassClaims {
            aud: "ws-1.workspaces.test".into(),
            who: Identity {
                user_id: "u1".into(),
                username: "u1".into(),
            },
            wid: "1".into(),
            iat: now,
            exp: now + 3600,
        },
    );
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        workspace_gate::server::start::run(cfg, shutdown, |b| {
            let _ = bound_tx.send(b.clone());
        })
        .await
    });
    let bound = bound_rx.await.unwrap();
    // Checks before the workspaces file is read answer 503 (not ready).
    let ready = format!("http://{}/readyz", bound.admin);
    for _ in 0..200 {
        if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Running {
        https: bound.https.expect("listen.https bound"),
        admin: bound.admin,
        pass,
        _stop: stop_tx,
    }
}

/// Makes `dir/tls.crt` and `dir/tls.key` those of `ca` (key first, as a
/// renewal that writes one file after the other).
fn install(dir: &Path, ca: &TestCa) {
    std::fs::copy(&ca.key_file, dir.join("tls.key")).unwrap();
    std::fs::copy(&ca.cert_file, dir.join("tls.crt")).unwrap();
}

fn client(ca: &TestCa, http1: bool) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_der(&ca.ca_der).unwrap()]);
    let b = if http1 { b.http1_only() } else { b };
    b.build().unwrap()
}

/// What Traefik asks the gate about `GET https://ws-1.workspaces.test/`.
fn traefik_check(c: &reqwest::Client, at: SocketAddr) -> reqwest::RequestBuilder {
    c.get(format!("https://{at}/check/traefik"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "ws-1.workspaces.test")
        .header("x-forwarded-uri", "/")
}

/// A Traefik-style check for a request without a session.
async fn check(c: &reqwest::Client, at: SocketAddr) -> reqwest::Result<reqwest::Response> {
    traefik_check(c, at)
        .header("accept", "application/json")
        .send()
        .await
}

/// The value of the metric line starting with `series ` (0 when absent).
async fn metric(admin: SocketAddr, series: &str) -> u64 {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

async fn reloads(admin: SocketAddr, result: &str) -> u64 {
    metric(
        admin,
        &format!("workspace_gate_tls_certificate_reloads_total{{result=\"{result}\"}}"),
    )
    .await
}

async fn connections(admin: SocketAddr) -> u64 {
    metric(admin, "workspace_gate_https_connections_total").await
}

/// A check with a valid pass, over `c`: allowed.
async fn allowed(c: &reqwest::Client, gate: &Running) -> reqwest::Result<u16> {
    let r = traefik_check(c, gate.https)
        .header(
            "cookie",
            format!("__Host-workspace-gate-pass={}", gate.pass),
        )
        .send()
        .await?;
    Ok(r.status().as_u16())
}

/// Polls `f` until it holds; the bound is only against hangs.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..600 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 60 s");
}

fn tempdir(label: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wg-https-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn issue(dir: &Path, name: &str) -> TestCa {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    TestCa::issue(&d, &["127.0.0.1".to_string()]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_are_answered_over_http2_and_http1() {
    support::install_crypto_provider();
    let dir = tempdir("alpn");
    let ca = issue(&dir, "a");
    install(&dir, &ca);
    let gate = start(&dir, "2m").await;

    for (http1, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let r = check(&client(&ca, http1), gate.https).await.unwrap();
        assert_eq!(r.version(), version);
        // Not signed in, not a navigation: refused, as over plain HTTP.
        assert_eq!(r.status(), 401);
    }

    // Over HTTP/2 a client may send each cookie as a header of its own
    // (Traefik does); the gate reads them as one Cookie header: the pass in
    // the second is found, and the app's cookie from the first is kept.
    let r = traefik_check(&client(&ca, false), gate.https)
        .header("cookie", "theme=dark")
        .header(
            "cookie",
            format!("__Host-workspace-gate-pass={}", gate.pass),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-workspace-user"], "u1");
    assert_eq!(r.headers()["cookie"], "theme=dark");

    // A client that trusts another CA does not get through.
    let other = issue(&dir, "other");
    assert!(check(&client(&other, false), gate.https).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    support::install_crypto_provider();
    let dir = tempdir("reload");
    let first = issue(&dir, "first");
    let renewed = issue(&dir, "renewed");
    let third = issue(&dir, "third");
    install(&dir, &first);
    let gate = start(&dir, "2m").await;
    assert_eq!(
        check(&client(&first, false), gate.https)
            .await
            .unwrap()
            .status(),
        401
    );
    assert!(check(&client(&renewed, false), gate.https).await.is_err());

    // Renewal: new key and certificate, picked up from the files.
    install(&dir, &renewed);
    eventually("serving the renewed certificate", || async {
        check(&client(&renewed, true), gate.https).await.is_ok()
    })
    .await;
    assert!(check(&client(&first, true), gate.https).await.is_err());
    assert!(reloads(gate.admin, "ok").await >= 1);

    // A broken renewal (the certificate file is not PEM): counted as
    // failed, and the last good certificate stays in service.
    let failed_before = reloads(gate.admin, "failed").await;
    std::fs::write(dir.join("tls.crt"), "not a certificate\n").unwrap();
    eventually("the broken files counted as a failed reload", || async {
        reloads(gate.admin, "failed").await > failed_before
    })
    .await;
    assert_eq!(
        check(&client(&renewed, true), gate.https)
            .await
            .unwrap()
            .status(),
        401
    );

    // The watcher goes on: the next good files are served.
    install(&dir, &third);
    eventually("serving the third certificate", || async {
        check(&client(&third, true), gate.https).await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_connections_are_closed_gracefully_so_clients_reconnect() {
    support::install_crypto_provider();
    let dir = tempdir("age");
    let ca = issue(&dir, "a");
    install(&dir, &ca);

    // Within the age, one client keeps one HTTP/2 connection.
    let gate = start(&dir, "2m").await;
    let c = client(&ca, false);
    for _ in 0..50 {
        assert_eq!(allowed(&c, &gate).await.unwrap(), 200);
    }
    assert_eq!(connections(gate.admin).await, 1);
    drop(gate);

    // Past it, the gate closes the connection after the requests in flight
    // and the client opens another; no check fails on the way.
    let dir = tempdir("age-short");
    install(&dir, &ca);
    let gate = start(&dir, "1s").await;
    let c = client(&ca, false);
    let mut checks = 0;
    while connections(gate.admin).await < 3 {
        let burst = futures::future::join_all((0..8).map(|_| allowed(&c, &gate))).await;
        for r in burst {
            assert_eq!(r.unwrap(), 200, "after {checks} checks");
            checks += 1;
        }
        assert!(checks < 1_000_000, "no reconnection after {checks} checks");
    }
}
