//! `decide()` for a request carrying a valid pass: the hot path of every
//! check. Run: `cargo bench --bench decide`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use workspace_gate::config::Scheme;
use workspace_gate::core::{CheckRequest, Decision, Settings, decide};
use workspace_gate::session::signed::sign;
use workspace_gate::session::{Identity, Keyring, PassClaims, TokenKind};
use workspace_gate::workspaces::{HostPort, Owner, Snapshot, Workspace};

#[path = "../examples/support/envoy_request.rs"]
mod envoy_request;

fn bench(c: &mut Criterion) {
    let now = 1_800_000_000;
    let settings = Settings::new(
        "workspaces.test",
        "workspaces.test",
        Scheme::Https,
        None,
        3600,
        60,
    );
    let keyring = Keyring::new(&[vec![7u8; 32], vec![8u8; 32]]).unwrap();
    // A realistic index: 10,000 workspaces, two hosts each.
    let workspaces = (0..10_000)
        .map(|i| Workspace {
            id: i.to_string(),
            name: format!("ws-{i}"),
            namespace: "ns".into(),
            owner: Some(Owner {
                id: format!("user-{i}"),
                username: format!("user{i}"),
            }),
            hosts: vec![
                HostPort {
                    host: format!("ws-{i}.workspaces.test"),
                    service_port: Some(3000),
                },
                HostPort {
                    host: format!("60001-ws-{i}.workspaces.test"),
                    service_port: Some(60001),
                },
            ],
            service: None,
            ssh: None,
        })
        .collect();
    let snapshot = Snapshot::build(workspaces).unwrap();
    let pass = sign(
        &keyring,
        TokenKind::Pass,
        &PassClaims {
            aud: "ws-4242.workspaces.test".into(),
            who: Identity {
                user_id: "user-4242".into(),
                username: "user4242".into(),
            },
            wid: "4242".into(),
            iat: now,
            exp: now + 3600,
        },
    );
    let cookie = format!("_ga=GA1.2.3; theme=dark; __Host-workspace-gate-pass={pass}; session=abc");
    let req = CheckRequest {
        method: "GET",
        host: "ws-4242.workspaces.test",
        path: "/api/v1/files?path=src/main.rs",
        cookie: Some(&cookie),
        accept: Some("application/json"),
        ..Default::default()
    };
    assert!(matches!(
        decide(&snapshot, &keyring, &settings, now, &req),
        Decision::Allow(_)
    ));
    c.bench_function("decide/valid_pass", |b| {
        b.iter(|| {
            decide(
                black_box(&snapshot),
                &keyring,
                &settings,
                now,
                black_box(&req),
            )
        })
    });
    let no_pass = CheckRequest {
        cookie: Some("_ga=GA1.2.3"),
        accept: Some("text/html"),
        ..req.clone()
    };
    c.bench_function("decide/no_pass_navigation", |b| {
        b.iter(|| {
            decide(
                black_box(&snapshot),
                &keyring,
                &settings,
                now,
                black_box(&no_pass),
            )
        })
    });
}

criterion_group!(benches, bench);

/// A gate state as `serve` builds it (one workspace, owner-annotation
/// authorization) and a valid pass for `ws-1.workspaces.test`.
fn gate_state() -> (workspace_gate::server::AppState, String) {
    use workspace_gate::config::Config;
    use workspace_gate::server::{AppState, now};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("wg-bench-grpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("key"),
        workspace_gate::session::keyring::generate_key(),
    )
    .unwrap();
    std::fs::write(dir.join("secret"), "bench").unwrap();
    std::fs::write(
        dir.join("ws.yaml"),
        "workspaces:\n- {id: '1', name: ws-1, owner: {id: u1, username: u1}, hosts: [ws-1.workspaces.test]}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("c.yaml"),
        "auth_host: workspaces.test\nworkspace_domain: workspaces.test\noidc: {issuer: 'https://idp.test', client_id: b, client_secret_file: secret}\nkeys: {files: [key]}\nworkspaces: {source: file, file: ws.yaml}\nauthorization: {mode: owner-annotation}\n",
    )
    .unwrap();
    let cfg = Config::load(Some(&dir.join("c.yaml")), &|_| None).unwrap();
    let keyring = Keyring::new(&cfg.keys).unwrap();
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
            iat: now(),
            exp: now() + 3600,
        },
    );
    let (publisher, reader) = workspace_gate::workspaces::index();
    publisher.publish(workspace_gate::workspaces::file::load(&dir.join("ws.yaml")).unwrap());
    let http = workspace_gate::server::start::http_client().unwrap();
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
    (state, pass)
}

/// The gRPC `Check` handler from the encoded message (decode included, no
/// transport), to see what surrounds `decide()` on that path; and the
/// decoding alone, into the gate's lean types and into the full generated
/// types. The message has the shape Envoy sends (`examples/support/envoy_request.rs`).
fn bench_grpc_handler(c: &mut Criterion) {
    use envoy_types::pb::envoy::service::auth::v3::CheckRequest as PbCheck;
    use prost::Message;
    use workspace_gate::adapters::envoy_grpc::wire;

    let (state, pass) = gate_state();
    let svc = workspace_gate::adapters::envoy_grpc::Service::new(state);
    let encoded = bytes::Bytes::from(
        envoy_request::envoy_check_request(
            "ws-1.workspaces.test",
            &format!("theme=dark; __Host-workspace-gate-pass={pass}"),
        )
        .encode_to_vec(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let decode = |b: &bytes::Bytes| wire::CheckRequest::decode(b.clone()).unwrap();
    let ok = rt.block_on(svc.check(decode(&encoded)));
    assert_eq!(ok.status.unwrap().code, 0);
    c.bench_function("grpc/check_handler_valid_pass", |b| {
        b.iter(|| rt.block_on(svc.check(decode(black_box(&encoded)))))
    });
    c.bench_function("grpc/decode_lean", |b| {
        b.iter(|| wire::CheckRequest::decode(black_box(&encoded).clone()).unwrap())
    });
    c.bench_function("grpc/decode_generated", |b| {
        b.iter(|| PbCheck::decode(black_box(&encoded).clone()).unwrap())
    });
}

/// The check as ingress-nginx calls it: `auth-url` with `?host=$host`.
const NGINX_CHECK: &str = "/check/nginx?host=ws-1.workspaces.test";

/// `GET /check/nginx` with a valid pass and `GET /trivial` through the
/// gate's router (no sockets): the user-space part of the HTTP check and
/// of the baseline that `bench/run.sh` compares it with.
fn bench_http_router(c: &mut Criterion) {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let (state, pass) = gate_state();
    let router =
        workspace_gate::server::app(state).route("/trivial", axum::routing::get(|| async { "ok" }));
    let cookie = format!("theme=dark; __Host-workspace-gate-pass={pass}");
    let request = |path: &str| {
        Request::get(path)
            .header(
                "x-original-url",
                "https://ws-1.workspaces.test/src/main.rs?x=1",
            )
            .header("x-original-method", "GET")
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ok = rt
        .block_on(router.clone().oneshot(request(NGINX_CHECK)))
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("x-workspace-user"));
    for path in ["/trivial", NGINX_CHECK] {
        let name = path.split('?').next().unwrap_or(path);
        c.bench_function(&format!("router{name}"), |b| {
            b.iter(|| rt.block_on(router.clone().oneshot(black_box(request(path)))))
        });
    }
}

criterion_group!(handlers, bench_grpc_handler, bench_http_router);
criterion_main!(benches, handlers);
