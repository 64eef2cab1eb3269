//! Envoy `ext_authz` over gRPC (`envoy.service.auth.v3.Authorization/Check`),
//! used by plain Envoy and by Envoy Gateway's `SecurityPolicy.extAuth.grpc`.
//!
//! Reads the request attributes Envoy fills in (method, host, path with
//! query, headers: the `headers` map, or the raw `header_map` list with
//! Envoy's `encode_raw_headers: true`). An allow sets the identity headers
//! with `OVERWRITE_IF_EXISTS_OR_ADD` (the default action would append to a
//! client-sent copy) and replaces or removes `cookie` and `authorization`.
//! Everything else is a `denied_response` that Envoy relays to the browser:
//! 302 with `Set-Cookie` for navigations and reserved paths, 401/403 with a
//! page otherwise.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use envoy_types::ext_authz::v3::pb::{CheckResponse, HeaderAppendAction};
use envoy_types::ext_authz::v3::{CheckResponseExt, OkHttpResponseBuilder};
use tonic::Status;
use tonic::server::NamedService;

use super::Checks;
use super::identity_headers;
use crate::core::{CheckRequest, Decision};

/// The parts of Envoy's `CheckRequest` a check reads, with the field
/// numbers of `envoy.service.auth.v3`. Every other field (the peers'
/// addresses, the time, metadata, TLS details) is skipped without being
/// decoded. Texts stay slices of the received message and are checked for
/// UTF-8 when read; header entries are read in wire order.
pub mod wire {
    use bytes::Bytes;

    /// `envoy.service.auth.v3.CheckRequest`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckRequest {
        #[prost(message, optional, tag = "1")]
        pub attributes: Option<AttributeContext>,
    }

    /// `envoy.service.auth.v3.AttributeContext`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeContext {
        #[prost(message, optional, tag = "4")]
        pub request: Option<Request>,
    }

    /// `envoy.service.auth.v3.AttributeContext.Request`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(message, optional, tag = "2")]
        pub http: Option<HttpRequest>,
    }

    /// `envoy.service.auth.v3.AttributeContext.HttpRequest`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HttpRequest {
        #[prost(bytes = "bytes", tag = "1")]
        pub id: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub method: Bytes,
        /// `map<string, string> headers`: on the wire, one entry message
        /// per header.
        #[prost(message, repeated, tag = "3")]
        pub headers: Vec<Header>,
        /// Path with query.
        #[prost(bytes = "bytes", tag = "4")]
        pub path: Bytes,
        #[prost(bytes = "bytes", tag = "5")]
        pub host: Bytes,
        /// `config.core.v3.HeaderMap header_map`, filled instead of
        /// `headers` when Envoy's `encode_raw_headers` is on.
        #[prost(message, optional, tag = "13")]
        pub header_map: Option<HeaderMap>,
    }

    /// `envoy.config.core.v3.HeaderMap`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HeaderMap {
        #[prost(message, repeated, tag = "1")]
        pub headers: Vec<RawHeader>,
    }

    /// `envoy.config.core.v3.HeaderValue`: Envoy fills `raw_value`; a
    /// `value` is read when `raw_value` is empty.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RawHeader {
        #[prost(bytes = "bytes", tag = "1")]
        pub key: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub value: Bytes,
        #[prost(bytes = "bytes", tag = "3")]
        pub raw_value: Bytes,
    }

    /// One entry of `HttpRequest.headers`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Header {
        #[prost(bytes = "bytes", tag = "1")]
        pub key: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub value: Bytes,
    }
}

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The `envoy.service.auth.v3.Authorization` gRPC service.
#[derive(Clone)]
pub struct Service<S> {
    state: S,
}

impl<S: Checks> Service<S> {
    pub fn new(state: S) -> Self {
        Service { state }
    }

    /// Answers one `Check`.
    pub async fn check(&self, req: wire::CheckRequest) -> CheckResponse {
        let Some(http) = req.attributes.and_then(|a| a.request).and_then(|r| r.http) else {
            // Fail closed on a request we cannot read.
            return crate::answer::bare(403).into_grpc_denied();
        };
        let Some(read) = Read::from(&http) else {
            return crate::answer::bare(403).into_grpc_denied();
        };
        let check_req = CheckRequest {
            method: read.method,
            host: read.host,
            path: read.path,
            cookie: read.cookie.as_deref(),
            authorization: read.authorization.as_deref(),
            accept: read.accept.as_deref(),
            sec_fetch_mode: read.sec_fetch_mode.as_deref(),
            upgrade: read.upgrade,
        };
        let reference = crate::adapters::Reference::new(Some(read.request_id));
        let decision = self.state.run("envoy_grpc", &reference, &check_req).await;
        let json = crate::answer::wants_json(read.accept.as_deref());
        answer(
            self.state.settings(),
            decision,
            read.cookie.is_some(),
            read.authorization.is_some(),
            &reference,
            json,
        )
    }
}

/// What a check reads from Envoy's request, as text.
struct Read<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    cookie: Option<Cow<'a, str>>,
    authorization: Option<Cow<'a, str>>,
    accept: Option<Cow<'a, str>>,
    sec_fetch_mode: Option<Cow<'a, str>>,
    upgrade: bool,
    request_id: &'a str,
}

impl<'a> Read<'a> {
    /// `None` when a field the check reads is not UTF-8, which Envoy never
    /// sends, or when both header forms are filled, which it never does
    /// either: such a request is refused, as an undecodable one was.
    fn from(http: &'a wire::HttpRequest) -> Option<Read<'a>> {
        let mut read = Read {
            method: text(&http.method)?,
            host: text(&http.host)?,
            path: text(&http.path)?,
            cookie: None,
            authorization: None,
            accept: None,
            sec_fetch_mode: None,
            upgrade: false,
            request_id: text(&http.id)?,
        };
        let raw = http.header_map.as_ref().map_or(&[][..], |m| &m.headers[..]);
        if !raw.is_empty() && !http.headers.is_empty() {
            return None;
        }
        // The map: Envoy writes each header once, lower-cased; were a name
        // repeated, the last entry would win, as in a decoded map.
        for h in &http.headers {
            read.header(&h.key, &h.value, false)?;
        }
        // The raw list keeps repeated headers apart; they are joined as
        // the map would have them, so both forms read the same.
        for h in raw {
            let value = if h.raw_value.is_empty() {
                &h.value
            } else {
                &h.raw_value
            };
            read.header(&h.key, value, true)?;
        }
        Some(read)
    }

    /// Takes one header entry; `join` appends a repeated one to the value
    /// read so far, else it replaces it. `None` when the value is not UTF-8.
    fn header(&mut self, key: &[u8], value: &'a bytes::Bytes, join: bool) -> Option<()> {
        let (slot, sep) = match key {
            b"cookie" => (&mut self.cookie, "; "),
            b"authorization" => (&mut self.authorization, ","),
            b"accept" => (&mut self.accept, ","),
            b"sec-fetch-mode" => (&mut self.sec_fetch_mode, ","),
            b"x-request-id" => {
                self.request_id = text(value)?;
                return Some(());
            }
            b"upgrade" => {
                self.upgrade = true;
                return Some(());
            }
            _ => return Some(()),
        };
        // A cookie pair that is not text costs only itself.
        let value = if key == b"cookie" {
            crate::core::cookies::header_text(value)
        } else {
            Cow::Borrowed(text(value)?)
        };
        *slot = Some(match slot.take() {
            Some(prev) if join => Cow::Owned(format!("{prev}{sep}{value}")),
            _ => value,
        });
        Some(())
    }
}

fn text(b: &bytes::Bytes) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

/// As a gRPC service for `Routes`: `Check` decodes into [`wire`] types,
/// every other method of the service is `unimplemented`.
impl<S> NamedService for Service<S> {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S: Checks> tower::Service<http::Request<tonic::body::Body>> for Service<S> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() != CHECK_PATH {
            return Box::pin(async {
                Ok(Status::unimplemented("").into_http::<tonic::body::Body>())
            });
        }
        let unary = Unary(self.clone());
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<CheckResponse, wire::CheckRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(unary, req).await)
        })
    }
}

struct Unary<S>(Service<S>);

impl<S: Checks> tonic::server::UnaryService<wire::CheckRequest> for Unary<S> {
    type Response = CheckResponse;
    type Future = BoxFuture<Result<tonic::Response<CheckResponse>, Status>>;

    fn call(&mut self, req: tonic::Request<wire::CheckRequest>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { Ok(tonic::Response::new(svc.check(req.into_inner()).await)) })
    }
}

fn answer(
    settings: &crate::core::Settings,
    decision: Decision,
    had_cookie: bool,
    had_authorization: bool,
    reference: &crate::adapters::Reference<'_>,
    json: bool,
) -> CheckResponse {
    let overwrite = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
    if let Decision::Allow(allow) = &decision {
        let mut ok = OkHttpResponseBuilder::new();
        for (name, value) in identity_headers(allow) {
            ok.add_header(name.as_str(), value.into_owned(), overwrite, true);
        }
        match &allow.upstream_cookie {
            Some(c) => {
                ok.add_header("cookie", c.clone(), overwrite, false);
            }
            None if had_cookie => {
                ok.remove_header("cookie");
            }
            None => {}
        }
        match &allow.upstream_authorization {
            Some(a) => {
                ok.add_header("authorization", a.clone(), overwrite, false);
            }
            None if had_authorization => {
                ok.remove_header("authorization");
            }
            None => {}
        }
        if let Some(c) = &allow.renewed_pass {
            ok.add_response_header(
                "set-cookie",
                c.to_string(),
                Some(HeaderAppendAction::AppendIfExistsOrAdd),
                false,
            );
        }
        let mut resp = CheckResponse::with_status(Status::ok(""));
        resp.set_http_response(ok);
        return resp;
    }
    crate::answer::refusal(settings, &decision, reference.get(), json).into_grpc_denied()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::pb::envoy::config::core::v3::{
        Address, HeaderMap, HeaderValue, Metadata, SocketAddress, address, socket_address,
    };
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request, TlsSession,
    };
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    use prost::Message;

    use super::{Read, wire};

    fn peer(port: u32) -> Peer {
        Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "10.0.0.7".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            principal: "spiffe://cluster.local/ns/x/sa/y".into(),
            ..Default::default()
        }
    }

    /// Every field Envoy can fill in, read with the generated types'
    /// encoding and decoded with the lean ones.
    fn encoded(headers: HashMap<String, String>) -> Vec<u8> {
        encoded_with(headers, None)
    }

    /// With `encode_raw_headers: true`, Envoy leaves `headers` empty and
    /// fills `header_map` with `key` and `raw_value`.
    fn encoded_raw(raw: &[(&str, &[u8])]) -> Vec<u8> {
        let headers = raw
            .iter()
            .map(|(k, v)| HeaderValue {
                key: k.to_string(),
                value: String::new(),
                raw_value: v.to_vec(),
            })
            .collect();
        encoded_with(HashMap::new(), Some(HeaderMap { headers }))
    }

    fn encoded_with(headers: HashMap<String, String>, header_map: Option<HeaderMap>) -> Vec<u8> {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(peer(36980)),
                destination: Some(peer(443)),
                request: Some(Request {
                    time: Some(envoy_types::pb::google::protobuf::Timestamp {
                        seconds: 1_795_338_297,
                        nanos: 1,
                    }),
                    http: Some(HttpRequest {
                        id: "16295462864675257343".into(),
                        method: "POST".into(),
                        headers,
                        path: "/src/main.rs?x=1&y=%2F".into(),
                        host: "60001-ws-1.workspaces.example.dev".into(),
                        scheme: "https".into(),
                        query: "x=1".into(),
                        fragment: "f".into(),
                        size: 12,
                        protocol: "HTTP/2".into(),
                        body: "ignored body".into(),
                        raw_body: b"\xff\xfe".to_vec(),
                        header_map,
                    }),
                }),
                context_extensions: HashMap::from([("k".into(), "v".into())]),
                metadata_context: Some(Metadata::default()),
                route_metadata_context: Some(Metadata::default()),
                tls_session: Some(TlsSession {
                    sni: "ws-1.workspaces.example.dev".into(),
                }),
            }),
        }
        .encode_to_vec()
    }

    fn http(bytes: &[u8]) -> wire::HttpRequest {
        wire::CheckRequest::decode(bytes)
            .unwrap()
            .attributes
            .unwrap()
            .request
            .unwrap()
            .http
            .unwrap()
    }

    #[test]
    fn reads_what_envoy_sends_and_skips_the_rest() {
        let headers = HashMap::from([
            (
                "cookie".to_string(),
                "theme=dark; __Host-workspace-gate-pass=p".to_string(),
            ),
            ("authorization".to_string(), "Bearer t".to_string()),
            ("accept".to_string(), "application/json".to_string()),
            ("sec-fetch-mode".to_string(), "navigate".to_string()),
            ("upgrade".to_string(), "websocket".to_string()),
            ("x-request-id".to_string(), "rid-1".to_string()),
            ("user-agent".to_string(), "curl".to_string()),
        ]);
        let http = http(&encoded(headers));
        assert_reads_the_sample(&Read::from(&http).expect("all text"));
    }

    /// The values of the sample request both header forms carry.
    fn assert_reads_the_sample(read: &Read<'_>) {
        assert_eq!(read.method, "POST");
        assert_eq!(read.host, "60001-ws-1.workspaces.example.dev");
        assert_eq!(read.path, "/src/main.rs?x=1&y=%2F");
        assert_eq!(
            read.cookie.as_deref(),
            Some("theme=dark; __Host-workspace-gate-pass=p")
        );
        assert_eq!(read.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(read.accept.as_deref(), Some("application/json"));
        assert_eq!(read.sec_fetch_mode.as_deref(), Some("navigate"));
        assert!(read.upgrade);
        assert_eq!(read.request_id, "rid-1");
    }

    #[test]
    fn raw_headers_read_as_the_map_does() {
        let http = http(&encoded_raw(&[
            ("cookie", b"theme=dark; __Host-workspace-gate-pass=p"),
            ("authorization", b"Bearer t"),
            ("accept", b"application/json"),
            ("sec-fetch-mode", b"navigate"),
            ("upgrade", b"websocket"),
            ("x-request-id", b"rid-1"),
            ("user-agent", b"\xff not read"),
        ]));
        assert_reads_the_sample(&Read::from(&http).expect("all text"));
    }

    #[test]
    fn repeated_raw_headers_are_joined_as_the_map_would_join_them() {
        // Cookies split over several fields (as HTTP/2 clients send them)
        // read as one cookie string; two Authorization headers read as one
        // value the token check refuses, never as either token alone.
        let http = http(&encoded_raw(&[
            ("cookie", b"theme=dark"),
            ("authorization", b"Bearer a"),
            ("cookie", b"__Host-workspace-gate-pass=p"),
            ("authorization", b"Bearer b"),
        ]));
        let read = Read::from(&http).expect("all text");
        assert_eq!(
            read.cookie.as_deref(),
            Some("theme=dark; __Host-workspace-gate-pass=p")
        );
        assert_eq!(read.authorization.as_deref(), Some("Bearer a,Bearer b"));
    }

    #[test]
    fn a_raw_header_without_raw_value_is_read_from_value() {
        let mut http = http(&encoded_raw(&[]));
        http.header_map = Some(wire::HeaderMap {
            headers: vec![wire::RawHeader {
                key: bytes::Bytes::from_static(b"cookie"),
                value: bytes::Bytes::from_static(b"__Host-workspace-gate-pass=v"),
                raw_value: bytes::Bytes::new(),
            }],
        });
        let read = Read::from(&http).expect("all text");
        assert_eq!(read.cookie.as_deref(), Some("__Host-workspace-gate-pass=v"));
    }

    #[test]
    fn both_header_forms_at_once_refuse_the_request() {
        let mut both = http(&encoded(HashMap::from([(
            "cookie".to_string(),
            "__Host-workspace-gate-pass=p".to_string(),
        )])));
        assert!(Read::from(&both).is_some());
        both.header_map =
            http(&encoded_raw(&[("cookie", b"__Host-workspace-gate-pass=q")])).header_map;
        assert!(Read::from(&both).is_none(), "headers and header_map");
        // A raw cookie pair that is not UTF-8 costs only itself.
        let odd = http(&encoded_raw(&[(
            "cookie",
            b"x=caf\xe9; __Host-workspace-gate-pass=p",
        )]));
        let read = Read::from(&odd).expect("the other pairs are read");
        assert_eq!(read.cookie.as_deref(), Some("__Host-workspace-gate-pass=p"));
    }

    #[test]
    fn absent_headers_stay_absent_and_the_id_is_envoys() {
        let http = http(&encoded(HashMap::new()));
        let read = Read::from(&http).expect("all text");
        assert_eq!(read.cookie, None);
        assert_eq!(read.authorization, None);
        assert_eq!(read.accept, None);
        assert_eq!(read.sec_fetch_mode, None);
        assert!(!read.upgrade);
        assert_eq!(read.request_id, "16295462864675257343");
    }

    #[test]
    fn a_read_field_that_is_not_utf8_refuses_the_request() {
        let mut http = http(&encoded(HashMap::from([(
            "cookie".to_string(),
            "__Host-workspace-gate-pass=p".to_string(),
        )])));
        assert!(Read::from(&http).is_some());
        // A cookie pair that is not UTF-8 is skipped, not the request.
        http.headers[0].value = bytes::Bytes::from_static(b"x=\xff; __Host-workspace-gate-pass=p");
        let read = Read::from(&http).expect("the cookie's other pairs are read");
        assert_eq!(read.cookie.as_deref(), Some("__Host-workspace-gate-pass=p"));
        let mut other = http.clone();
        other.headers.clear();
        other.host = bytes::Bytes::from_static(b"ws-1\xc0.workspaces.example.dev");
        assert!(Read::from(&other).is_none(), "a host that is not UTF-8");
        // A header the check does not read may be anything.
        let mut ignored = other.clone();
        ignored.host = bytes::Bytes::from_static(b"ws-1.workspaces.example.dev");
        ignored.headers.push(wire::Header {
            key: bytes::Bytes::from_static(b"user-agent"),
            value: bytes::Bytes::from_static(b"\xff"),
        });
        assert!(Read::from(&ignored).is_some());
    }

    #[test]
    fn the_last_of_repeated_entries_wins_as_in_a_map() {
        let mut http = http(&encoded(HashMap::new()));
        for v in ["first", "last"] {
            http.headers.push(wire::Header {
                key: bytes::Bytes::from_static(b"authorization"),
                value: bytes::Bytes::from(v),
            });
        }
        assert_eq!(
            Read::from(&http).unwrap().authorization.as_deref(),
            Some("last")
        );
    }
}
