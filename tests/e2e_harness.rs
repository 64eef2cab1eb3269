//! Self-tests of the end-to-end harness, independent of the gate: the
//! provider serves discovery and issues real tokens, the GitLab double
//! resolves them, and nginx (configured as ingress-nginx) behaves as
//! CONTROLLERS.md says, checked against a stub auth service.

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use support::client::{Browser, Mode};
use support::controller::{ControllerKind, ControllerSetup};
use support::echo::Echo;
use support::gitlab::GitlabDouble;
use support::process::{TestDir, free_port};
use support::provider::Provider;
use support::stack::DOMAIN;
use support::tls::TestCa;
use support::workspaces::{WorkspacesFile, default_workspaces};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_issues_real_tokens_that_the_gitlab_double_resolves() {
    support::install_crypto_provider();
    let dir = TestDir::new("harness-provider").unwrap();
    let provider = Provider::start(
        &dir.path,
        &["https://workspaces.test:1/auth/callback".into()],
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let disco: serde_json::Value = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disco["issuer"], provider.issuer.as_str());

    let tokens = provider.user_tokens("alice").await.unwrap();
    assert!(
        tokens.refresh_token.is_some(),
        "offline_access gives a refresh token"
    );
    let me: serde_json::Value = http
        .get(format!("{}/me", provider.issuer))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["preferred_username"], "alice");

    let ws = WorkspacesFile {
        path: dir.path.join("workspaces.yaml"),
    };
    ws.write(&default_workspaces(DOMAIN)).unwrap();
    let gitlab = GitlabDouble::start(&provider.issuer, ws.path.clone())
        .await
        .unwrap();
    let q = serde_json::json!({"query": "query { currentUser { id username } workspace(id: \"gid://gitlab/RemoteDevelopment::Workspace/3\") { id user { id } } }"});
    let r = http
        .post(format!("{}/api/graphql", gitlab.url()))
        .bearer_auth(&tokens.access_token)
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["currentUser"]["id"], "gid://gitlab/User/alice");
    assert_eq!(
        v["data"]["workspace"]["user"]["id"],
        "gid://gitlab/User/bob"
    );
    let r = http
        .post(format!("{}/api/graphql", gitlab.url()))
        .bearer_auth("not-a-token")
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// A stand-in for the gate's check: allows when the client sent cookie
/// `stub-pass=ok` (answering with identity headers and the Cookie header
/// minus `stub-pass`, plus a Set-Cookie), 403 for `stub-pass=no`, else 401.
async fn stub_check(headers: HeaderMap) -> axum::response::Response {
    let cookie = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let original = headers
        .get("x-original-url")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if cookie.contains("stub-pass=ok") {
        let rest: Vec<&str> = cookie
            .split("; ")
            .filter(|c| !c.starts_with("stub-pass="))
            .collect();
        let mut h = HeaderMap::new();
        h.insert("x-workspace-user", "stub-user".parse().unwrap());
        h.insert("x-workspace-user-id", "42".parse().unwrap());
        h.insert("x-workspace-id", original.parse().unwrap());
        if !rest.is_empty() {
            h.insert("cookie", rest.join("; ").parse().unwrap());
        }
        h.insert(
            "set-cookie",
            "stub-refreshed=1; Path=/; Secure; HttpOnly"
                .parse()
                .unwrap(),
        );
        return (StatusCode::OK, h).into_response();
    }
    if cookie.contains("stub-pass=no") {
        return (StatusCode::FORBIDDEN, "stub: not allowed").into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [("set-cookie", "stub-seen=1; Path=/; Secure")],
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_fixture_behaves_like_ingress_nginx_auth_url() {
    support::install_crypto_provider();
    let dir = TestDir::new("harness-nginx").unwrap();
    let ca = TestCa::create(&dir.path, DOMAIN).unwrap();
    let stub = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub_addr: SocketAddr = stub.local_addr().unwrap();
    let app = Router::new()
        .route("/check/nginx", axum::routing::get(stub_check))
        .fallback(|headers: HeaderMap, uri: axum::http::Uri| async move {
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let proto = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            format!("gate-direct host={host} proto={proto} uri={uri}")
        });
    tokio::spawn(async move { axum::serve(stub, app).await.unwrap() });
    let echo = Echo::start().await.unwrap();
    let port = free_port();
    let setup = ControllerSetup {
        dir: dir.path.clone(),
        port,
        cert_file: ca.cert_file.clone(),
        key_file: ca.key_file.clone(),
        auth_host: DOMAIN.into(),
        workspace_domain: DOMAIN.into(),
        gate_http: stub_addr,
        gate_grpc: None,
        gate_https: None,
        upstream: echo.addr(),
        routes: vec![],
        workspaces: vec![],
        kube: None,
    };
    let nginx = ControllerKind::Nginx.start(&setup).await.unwrap();
    let b = Browser::new(Some(&ca.ca_der), DOMAIN).unwrap();
    let ws = format!("https://ws-1.{DOMAIN}:{port}");

    // 401 -> auth-signin redirect with the method nginx expanded
    // (`m=$request_method`) and the escaped original URL ($request_uri is
    // the raw, still percent-encoded request target), Set-Cookie relayed.
    let r = b
        .get(&format!("{ws}/src/a b?x=1&y=%2F"), Mode::Navigate, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 302, "{}\n{}", r.describe(), nginx.logs());
    let loc = r.location().unwrap();
    assert_eq!(
        loc,
        format!(
            "https://ws-1.{DOMAIN}:{port}/.workspace-gate/start?m=GET&rd=https://ws-1.{DOMAIN}:{port}%2Fsrc%2Fa%2520b%3Fx%3D1%26y%3D%252F"
        )
    );
    let rd = reqwest::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "rd")
        .unwrap()
        .1
        .to_string();
    assert_eq!(
        rd,
        format!("https://ws-1.{DOMAIN}:{port}/src/a%20b?x=1&y=%2F")
    );
    assert!(
        r.set_cookies().iter().any(|c| c.starts_with("stub-seen=1")),
        "{}",
        r.describe()
    );

    // 200 -> upstream gets identity headers, the replaced Cookie, no forged identity.
    let r = b
        .get(
            &format!("{ws}/p?q=1"),
            Mode::Fetch,
            &[
                ("cookie", "stub-pass=ok; app=1"),
                ("x-workspace-user", "mallory"),
                ("x-forwarded-host", "evil.test"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    let seen = echo.last().unwrap();
    assert_eq!(seen.headers_named("x-workspace-user"), vec!["stub-user"]);
    assert_eq!(
        seen.header("x-workspace-id"),
        Some(format!("https://ws-1.{DOMAIN}:{port}/p?q=1").as_str())
    );
    assert_eq!(seen.headers_named("cookie"), vec!["app=1"]);
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.starts_with("stub-refreshed=1"))
    );

    // Only the gate's cookie: the Cookie header is removed altogether.
    let r = b
        .get(
            &format!("{ws}/p"),
            Mode::Fetch,
            &[("cookie", "stub-pass=ok")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        echo.last().unwrap().header("cookie").is_none(),
        "{:?}",
        echo.last()
    );

    // 403 stays 403 (nginx's own page; the auth body never reaches the client).
    let r = b
        .get(
            &format!("{ws}/p"),
            Mode::Navigate,
            &[("cookie", "stub-pass=no")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(!r.body.contains("stub: not allowed"));

    // The reserved prefix and the auth host reach the gate without auth, Host preserved.
    let r = b
        .get(
            &format!("{ws}/.workspace-gate/callback?t=1"),
            Mode::Navigate,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        format!(
            "gate-direct host=ws-1.{DOMAIN}:{port} proto=https uri=/.workspace-gate/callback?t=1"
        )
    );
    let r = b
        .get(
            &format!("https://{DOMAIN}:{port}/auth/start?rd=x"),
            Mode::Navigate,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        r.body,
        format!("gate-direct host={DOMAIN}:{port} proto=https uri=/auth/start?rd=x")
    );
}
