//! The sample workspace upstream: answers every request with its request
//! line and headers (JSON for `Accept: application/json`, an HTML page
//! otherwise, the X-Workspace-* identity first) and echoes WebSocket messages
//! at `/ws`. It records every request it received, so tests can assert what
//! reached the workspace. Besides its first port it can listen on one port
//! per workspace host ([`Echo::listen_as`]): the controllers route each
//! host to its own port, so a test can tell which workspace's upstream a
//! request reached (the `upstream` of each [`Seen`], also answered in an
//! `X-Upstream` header).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct Seen {
    /// The upstream (workspace host) whose port received the request;
    /// `default` for the first port.
    pub upstream: String,
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Clone, Default)]
pub struct Echo {
    pub addr: Option<SocketAddr>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Echo {
    pub async fn start() -> anyhow::Result<Echo> {
        let mut echo = Echo::default();
        echo.addr = Some(echo.listen_as("default").await?);
        Ok(echo)
    }

    /// One more port, whose requests are recorded as reaching `upstream`.
    pub async fn listen_as(&self, upstream: &str) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback({
            let seen = self.seen.clone();
            let upstream: Arc<str> = upstream.into();
            move |req: Request| handle(req, upstream.clone(), seen.clone())
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(addr)
    }

    /// Requests that reached `upstream`'s port.
    pub fn seen_by(&self, upstream: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.upstream == upstream)
            .collect()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("echo started")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }
}

async fn handle(req: Request, upstream: Arc<str>, seen: Arc<Mutex<Vec<Seen>>>) -> Response {
    let record = Seen {
        upstream: upstream.to_string(),
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    seen.lock().unwrap().push(record.clone());

    if req.uri().path() == "/ws" {
        let (mut parts, _body) = req.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => {
                let user = record.header("x-workspace-user").unwrap_or("").to_string();
                ws.on_upgrade(move |mut socket| async move {
                    let _ = socket
                        .send(Message::Text(format!("hello {user}").into()))
                        .await;
                    while let Some(Ok(msg)) = socket.recv().await {
                        if matches!(msg, Message::Close(_)) {
                            break;
                        }
                        let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
                        if echo && socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                })
                .into_response()
            }
            Err(e) => e.into_response(),
        };
    }

    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        let headers: serde_json::Map<String, serde_json::Value> = group(req.headers())
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect();
        let body = serde_json::json!({
            "method": record.method,
            "uri": record.uri,
            "headers": headers,
        });
        return (
            StatusCode::OK,
            [("x-upstream", upstream.to_string())],
            axum::Json(body),
        )
            .into_response();
    }
    ([("x-upstream", upstream.to_string())], Html(page(&record))).into_response()
}

fn group(h: &HeaderMap) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in h {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match out.iter_mut().find(|(n, _)| n == k.as_str()) {
            Some((_, vs)) => vs.push(v),
            None => out.push((k.to_string(), vec![v])),
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(r: &Seen) -> String {
    let ident = |n: &str| esc(r.header(n).unwrap_or("(none)"));
    let rows: String = r
        .headers
        .iter()
        .map(|(k, v)| format!("<tr><td>{}</td><td>{}</td></tr>\n", esc(k), esc(v)))
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>echo workspace</title></head>
<body>
<h1>Sample workspace</h1>
<p id="identity">X-Workspace-User: <b id="user">{user}</b>;
X-Workspace-User-Id: <b id="user-id">{uid}</b>;
X-Workspace-Id: <b id="workspace-id">{wid}</b></p>
<p id="request">{method} {uri}</p>
<table>{rows}</table>
<p>WebSocket: <span id="ws">not connected</span></p>
<script>
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.onmessage = (e) => {{ document.getElementById('ws').textContent = e.data; }};
</script>
</body></html>"#,
        user = ident("x-workspace-user"),
        uid = ident("x-workspace-user-id"),
        wid = ident("x-workspace-id"),
        method = esc(&r.method),
        uri = esc(&r.uri),
    )
}
