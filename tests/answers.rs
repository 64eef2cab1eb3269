//! The same refusal, asked for through every path (ingress-nginx's check,
//! Traefik's, Envoy's HTTP mode and gRPC, and the gate's own pages), comes
//! back the same: one `Content-Type`, the same security headers, the same
//! body with the same reference id. No sockets: the public router and the
//! gRPC service are called in process.

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use workspace_gate::adapters::envoy_grpc::{Service, wire};
use workspace_gate::server::AppState;

const ID: &str = "ref-7f3a";

/// A gate on a workspaces file (ws-1 owned by u1), owner-annotation mode.
fn gate() -> AppState {
    gate_and_keys().0
}

/// [`gate`], and the keys it signs passes with.
fn gate_and_keys() -> (AppState, workspace_gate::session::Keyring) {
    use workspace_gate::config::Config;
    use workspace_gate::session::Keyring;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A directory per gate: the tests of this file run at the same time.
    let dir = std::env::temp_dir().join(format!("wg-answers-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("key"),
        workspace_gate::session::keyring::generate_key(),
    )
    .unwrap();
    std::fs::write(dir.join("secret"), "s").unwrap();
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
    let keys = Keyring::new(&cfg.keys).unwrap();
    let (publisher, reader) = workspace_gate::workspaces::index();
    publisher.publish(workspace_gate::workspaces::file::load(&dir.join("ws.yaml")).unwrap());
    std::mem::forget(publisher);
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
    (state, keys)
}

/// What a client would get: status, headers (lower-case names, in order)
/// and body.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The headers an answer is compared by (the gate's pages also echo
    /// `x-request-id`; axum adds `content-length`).
    fn compared(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, _)| k != "x-request-id" && k != "content-length")
            .cloned()
            .collect();
        h.sort();
        h
    }
}

async fn http(state: &AppState, req: Request<Body>) -> Seen {
    let resp = workspace_gate::server::app(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Seen {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn grpc(state: &AppState, host: &str, accept: &str) -> Seen {
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    let header = |k: &'static str, v: &str| wire::Header {
        key: bytes::Bytes::from_static(k.as_bytes()),
        value: bytes::Bytes::from(v.to_string()),
    };
    let req = wire::CheckRequest {
        attributes: Some(wire::AttributeContext {
            request: Some(wire::Request {
                http: Some(wire::HttpRequest {
                    id: bytes::Bytes::from_static(b"envoy-id"),
                    method: bytes::Bytes::from_static(b"GET"),
                    headers: vec![header("x-request-id", ID), header("accept", accept)],
                    path: bytes::Bytes::from_static(b"/x"),
                    host: bytes::Bytes::from(host.to_string()),
                    header_map: None,
                }),
            }),
        }),
    };
    let resp = Service::new(state.clone()).check(req).await;
    let Some(HttpResponse::DeniedResponse(d)) = resp.http_response else {
        panic!("not a denied response: {resp:?}");
    };
    Seen {
        status: d.status.map_or(0, |s| s.code as u16),
        headers: d
            .headers
            .iter()
            .filter_map(|o| o.header.as_ref())
            .map(|h| (h.key.to_ascii_lowercase(), h.value.clone()))
            .collect(),
        body: d.body,
    }
}

fn traefik(host: &str, accept: &str) -> Request<Body> {
    Request::get("/check/traefik")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", "/x")
        .header("x-request-id", ID)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap()
}

fn envoy_http(host: &str, accept: &str) -> Request<Body> {
    Request::get("/check/envoy/x")
        .header("host", host)
        .header("x-request-id", ID)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap()
}

fn nginx(host: &str, accept: &str) -> Request<Body> {
    Request::get(format!("/check/nginx?host={host}"))
        .header("x-original-url", format!("https://{host}/x"))
        .header("x-original-method", "GET")
        .header("x-request-id", ID)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap()
}

/// Checks what every answer of a refusal must carry, then that all of
/// them are the same answer.
fn same_answer(seen: &[(&str, Seen)]) {
    for (path, s) in seen {
        assert_eq!(
            s.all("content-type").len(),
            1,
            "{path}: one Content-Type: {s:#?}"
        );
        assert_eq!(
            s.all("x-content-type-options"),
            ["nosniff"],
            "{path}: {s:#?}"
        );
        assert_eq!(s.all("cache-control"), ["no-store"], "{path}: {s:#?}");
        assert!(s.body.contains(ID), "{path}: reference id: {s:#?}");
    }
    let (first_path, first) = &seen[0];
    for (path, s) in &seen[1..] {
        assert_eq!(s.status, first.status, "{path} vs {first_path}");
        assert_eq!(s.compared(), first.compared(), "{path} vs {first_path}");
        assert_eq!(s.body, first.body, "{path} vs {first_path}");
    }
}

#[tokio::test]
async fn an_unknown_workspace_is_the_same_refusal_on_every_path() {
    let state = gate();
    // Outside the workspace domain: no workspace, and no reserved path either.
    let host = "other.test";
    for accept in ["text/html", "Application/JSON"] {
        let page = Request::get("/.workspace-gate/callback?token=x")
            .header("host", host)
            .header("x-request-id", ID)
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let seen = [
            ("gate page", http(&state, page).await),
            ("traefik", http(&state, traefik(host, accept)).await),
            ("envoy http", http(&state, envoy_http(host, accept)).await),
            ("envoy grpc", grpc(&state, host, accept).await),
        ];
        same_answer(&seen);
        let json = accept.eq_ignore_ascii_case("application/json");
        let ctype = if json {
            "application/json"
        } else {
            "text/html; charset=utf-8"
        };
        assert_eq!(seen[0].1.all("content-type"), [ctype], "{accept}");
        // nginx shows its client none of the check's body: a bare 403.
        let n = http(&state, nginx(host, accept)).await;
        assert_eq!(n.status, 403);
        assert!(n.body.is_empty());
    }
}

#[tokio::test]
async fn sign_in_required_is_the_same_refusal_on_every_relaying_path() {
    let state = gate();
    let host = "ws-1.workspaces.test";
    // Not a navigation (JSON wanted): a 401, never a redirect.
    let accept = "application/json";
    let seen = [
        ("traefik", http(&state, traefik(host, accept)).await),
        ("envoy http", http(&state, envoy_http(host, accept)).await),
        ("envoy grpc", grpc(&state, host, accept).await),
    ];
    same_answer(&seen);
    assert_eq!(seen[0].1.status, 401);
    assert_eq!(
        seen[0].1.all("www-authenticate"),
        ["Bearer realm=\"workspace-gate\""]
    );
    // ingress-nginx turns every 401 into the auth-signin redirect: what is
    // no navigation gets a 403 there, which reaches the client as it is.
    let n = http(&state, nginx(host, accept)).await;
    assert_eq!(n.status, 403);
    assert!(n.body.is_empty());
    // A navigation still gets the 401 that becomes the login redirect.
    let n = http(&state, nginx(host, "text/html")).await;
    assert_eq!(n.status, 401);
    assert_eq!(
        n.all("www-authenticate"),
        ["Bearer realm=\"workspace-gate\""]
    );
}

/// An nginx allow carries the request's own cookies back; one whose head
/// would not fit the buffer the Ingress names (`buffer=`, 4k without it)
/// is refused with a bare 403 instead of reaching nginx as a 500.
#[tokio::test]
async fn an_nginx_allow_too_large_for_its_buffer_is_refused() {
    use workspace_gate::session::signed::sign;
    use workspace_gate::session::{Identity, PassClaims, TokenKind};
    let (state, keys) = gate_and_keys();
    let host = "ws-1.workspaces.test";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let pass = sign(
        &keys,
        TokenKind::Pass,
        &PassClaims {
            aud: host.into(),
            who: Identity {
                user_id: "u1".into(),
                username: "u1".into(),
            },
            wid: "1".into(),
            iat: now,
            exp: now + 60,
        },
    );
    let app = format!("app={}", "a".repeat(8_000));
    let check = |query: &str| {
        Request::get(format!("/check/nginx?host={host}{query}"))
            .header("x-original-url", format!("https://{host}/x"))
            .header(
                "cookie",
                format!("__Host-workspace-gate-pass={pass}; {app}"),
            )
            .body(Body::empty())
            .unwrap()
    };
    for query in ["", "&buffer=4k", "&buffer=32k&buffer=64k", "&buffer=8k"] {
        let r = http(&state, check(query)).await;
        assert_eq!(r.status, 403, "{query:?}");
        assert!(r.all("cookie").is_empty(), "{query:?}");
    }
    let r = http(&state, check("&buffer=32k")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.all("cookie"), [app.as_str()]);
}
