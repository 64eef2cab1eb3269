//! A gate for load tests: the real public router (with `/check/nginx`,
//! `/check/traefik`, ...) plus a trivial `GET /trivial` answering 200 in the
//! same process, so both are measured in one run. With `--grpc` it also
//! serves the Envoy ext_authz gRPC API next to a trivial unary service
//! (`grpc.health.v1.Health/Check`); with `--https` also the router over TLS
//! (`listen.https`'s server, a self-signed certificate for 127.0.0.1 whose
//! file is printed as `ca`).
//!
//! Prints one JSON line: the bound addresses, a valid pass cookie for
//! `ws-1.workspaces.test` and the host to send. Used by `bench/run.sh`.
//!
//! Run: `cargo run --release --example bench_server -- --http 127.0.0.1:0`

use std::time::Duration;

use axum::routing::get;
use workspace_gate::config::Config;
use workspace_gate::server::start::http_client;
use workspace_gate::server::{AppState, app, now};
use workspace_gate::session::signed::sign;
use workspace_gate::session::{Identity, Keyring, PassClaims, TokenKind};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("wg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("key"),
        workspace_gate::session::keyring::generate_key(),
    )?;
    std::fs::write(dir.join("secret"), "bench")?;
    let n: usize = arg("--workspaces", "1000").parse()?;
    let mut ws = String::from("workspaces:\n");
    for i in 1..=n {
        ws.push_str(&format!(
            "- {{id: '{i}', name: ws-{i}, namespace: ns, owner: {{id: user-{i}, username: user{i}}}, hosts: [ws-{i}.workspaces.test]}}\n"
        ));
    }
    std::fs::write(dir.join("ws.yaml"), ws)?;
    std::fs::write(
        dir.join("config.yaml"),
        "auth_host: workspaces.test\nworkspace_domain: workspaces.test\nlisten: {http: '127.0.0.1:0', admin: '127.0.0.1:0'}\n\
oidc: {issuer: 'http://127.0.0.1:9', client_id: bench, client_secret_file: secret}\n\
keys: {files: [key]}\nworkspaces: {source: file, file: ws.yaml}\nauthorization: {mode: owner-annotation}\nlog: {level: warn}\n",
    )?;
    let cfg = Config::load(Some(&dir.join("config.yaml")), &|_| None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let keyring = Keyring::new(&cfg.keys).map_err(anyhow::Error::msg)?;
    // The pass subkey as a JWK, so Envoy's own jwt_authn filter can verify
    // the very same cookie (the in-process baseline of bench/controllers.sh).
    let jwk = {
        use base64::Engine;
        let key = keyring.signing();
        serde_json::json!({"keys": [{
            "kty": "oct",
            "kid": key.kid,
            "alg": "HS256",
            "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.subkey(TokenKind::Pass)),
        }]})
        .to_string()
    };
    let pass = sign(
        &keyring,
        TokenKind::Pass,
        &PassClaims {
            aud: "ws-1.workspaces.test".into(),
            who: Identity {
                user_id: "user-1".into(),
                username: "user1".into(),
            },
            wid: "1".into(),
            iat: now(),
            exp: now() + 24 * 3600,
        },
    );
    let snapshot = workspace_gate::workspaces::file::load(&dir.join("ws.yaml"))?;
    let (publisher, reader) = workspace_gate::workspaces::index();
    publisher.publish(snapshot);
    let http = http_client()?;
    let provider = std::sync::Arc::new(workspace_gate::oidc::Provider::new(
        http.clone(),
        cfg.oidc.clone(),
        cfg.redirect_uri(),
    ));
    let state = AppState::new(
        cfg,
        keyring,
        reader,
        provider,
        http,
        Default::default(),
        Default::default(),
    );
    let router = app(state.clone()).route("/trivial", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(arg("--http", "127.0.0.1:0")).await?;
    let http_addr = listener.local_addr()?;
    let grpc_addr = if std::env::args().any(|a| a == "--grpc") {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let st = state.clone();
        let limits = workspace_gate::server::limits(&state.cfg.listen, None);
        // The gate's Authorization service and a trivial unary service
        // (health) on one gRPC server: the baseline shares everything.
        let (_reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(async move {
            let _keep = _reporter;
            workspace_gate::adapters::grpc_transport::serve(
                l,
                tonic::service::Routes::new(workspace_gate::adapters::envoy_grpc::Service::new(st))
                    .add_service(health),
                limits,
                std::future::pending(),
            )
            .await
        });
        Some(addr)
    } else {
        None
    };
    // With --https, the same router on a TLS listener (a self-signed
    // certificate for 127.0.0.1, written to <dir>/tls.crt for the client).
    let https_addr = if std::env::args().any(|a| a == "--https") {
        let key = rcgen::KeyPair::generate()?;
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.self_signed(&key)?;
        std::fs::write(dir.join("tls.crt"), cert.pem())?;
        std::fs::write(dir.join("tls.key"), key.serialize_pem())?;
        use workspace_gate::server::tls;
        let certs = std::sync::Arc::new(
            tls::ReloadingCert::new(dir.join("tls.crt"), dir.join("tls.key"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(tls::serve(
            l,
            tls::server_config(certs)?,
            router.clone(),
            workspace_gate::server::limits(
                &state.cfg.listen,
                Some(humantime::parse_duration(&arg("--https-max-age", "2m"))?),
            ),
            || {},
            std::future::pending(),
        ));
        Some(addr)
    } else {
        None
    };
    println!(
        "{}",
        serde_json::json!({
            "http": http_addr.to_string(),
            "grpc": grpc_addr.map(|a| a.to_string()),
            "https": https_addr.map(|a| a.to_string()),
            "ca": https_addr.map(|_| dir.join("tls.crt")),
            "pid": std::process::id(),
            "host": "ws-1.workspaces.test",
            "cookie": format!("__Host-workspace-gate-pass={pass}"),
            "jwks": jwk,
        })
    );
    // The gate's own HTTP server, as `listen.http` runs it.
    let seconds = arg("--seconds", "600").parse()?;
    workspace_gate::server::serve(
        "listen.http",
        listener,
        router,
        workspace_gate::server::limits(&state.cfg.listen, None),
        tokio::time::sleep(Duration::from_secs(seconds)),
    )
    .await?;
    Ok(())
}
