//! The one HTTP seam of the relying party and the authorizers: a request
//! goes out, a status and a bounded body come back. Production sends with
//! `reqwest`; unit tests answer from a script ([`scripted`]), so every
//! branch of discovery, code redemption, refresh, userinfo and the GitLab
//! check runs without a socket.

use std::sync::Arc;

use async_trait::async_trait;

use crate::bounded::{self, BodyError};

/// A request's body is small (a form or a GraphQL query), built in memory.
pub(crate) type Request = http::Request<Vec<u8>>;

/// The provider's status and headers, with the body read up to
/// [`bounded::PROVIDER_ANSWER_LIMIT`]. A body that could not be read stays
/// an error here rather than failing the call, so a caller that looks only
/// at the status (a refused request, a 401 from GitLab) decides on the
/// status alone, and one that reads the body reports what went wrong.
pub(crate) type Answer = http::Response<Result<Vec<u8>, BodyError>>;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Send(#[source] reqwest::Error),
    /// A header value that HTTP cannot carry (e.g. a token with a newline).
    #[error("the request cannot be built: {0}")]
    Build(#[source] http::Error),
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, req: Request) -> Result<Answer, TransportError>;
}

#[async_trait]
impl Transport for reqwest::Client {
    async fn send(&self, req: Request) -> Result<Answer, TransportError> {
        let req = reqwest::Request::try_from(req).map_err(TransportError::Send)?;
        let resp = self.execute(req).await.map_err(TransportError::Send)?;
        let mut head = http::Response::builder().status(resp.status());
        if let Some(h) = head.headers_mut() {
            h.extend(resp.headers().clone());
        }
        let body = bounded::bytes(resp, bounded::PROVIDER_ANSWER_LIMIT).await;
        head.body(body).map_err(TransportError::Build)
    }
}

/// The production transport.
pub(crate) fn reqwest(http: reqwest::Client) -> Arc<dyn Transport> {
    Arc::new(http)
}

/// A request to `url` with `method`, an optional `Authorization` (marked
/// sensitive so it never shows in debug output) and an optional body with
/// its content type.
pub(crate) fn request(
    method: http::Method,
    url: &str,
    authorization: Option<String>,
    body: Option<(&'static str, Vec<u8>)>,
) -> Result<Request, TransportError> {
    let mut b = http::Request::builder().method(method).uri(url);
    if let Some(auth) = authorization {
        let mut v = http::HeaderValue::try_from(auth)
            .map_err(|e| TransportError::Build(http::Error::from(e)))?;
        v.set_sensitive(true);
        b = b.header(http::header::AUTHORIZATION, v);
    }
    let body = match body {
        Some((content_type, bytes)) => {
            b = b.header(http::header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Vec::new(),
    };
    b.body(body).map_err(TransportError::Build)
}

/// The body as JSON, or why it is not.
pub(crate) fn json<T: serde::de::DeserializeOwned>(answer: Answer) -> Result<T, BodyError> {
    let body = answer.into_body()?;
    if body.len() > bounded::PROVIDER_ANSWER_LIMIT {
        return Err(BodyError::TooLarge(bounded::PROVIDER_ANSWER_LIMIT));
    }
    serde_json::from_slice(&body).map_err(BodyError::Json)
}

/// An in-memory transport for unit tests: a queue of expected requests,
/// each with its canned answer. A request that is not the next expected
/// one, or one past the end of the script, fails the test.
#[cfg(test)]
pub(crate) mod scripted {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    pub(crate) struct Step {
        method: http::Method,
        url: String,
        status: u16,
        body: Result<Vec<u8>, BodyError>,
    }

    /// Expects `method url`, answers `status` with `body`.
    pub(crate) fn step(method: &str, url: &str, status: u16, body: &str) -> Step {
        Step {
            method: method.parse().unwrap(),
            url: url.into(),
            status,
            body: Ok(body.as_bytes().to_vec()),
        }
    }

    /// Expects `method url`, answers `status` with a body past the bound.
    pub(crate) fn too_large(method: &str, url: &str, status: u16) -> Step {
        Step {
            body: Err(BodyError::TooLarge(bounded::PROVIDER_ANSWER_LIMIT)),
            ..step(method, url, status, "")
        }
    }

    #[derive(Default)]
    pub(crate) struct Script {
        steps: Mutex<VecDeque<Step>>,
        /// Every request received, for assertions on headers and bodies.
        pub(crate) seen: Mutex<Vec<Request>>,
    }

    impl Script {
        pub(crate) fn new(steps: impl IntoIterator<Item = Step>) -> Arc<Self> {
            Arc::new(Script {
                steps: Mutex::new(steps.into_iter().collect()),
                seen: Mutex::default(),
            })
        }

        /// Fails the test if an expected request was never made.
        pub(crate) fn assert_done(&self) {
            let left = self.steps.lock().unwrap();
            assert!(
                left.is_empty(),
                "expected requests never made: {:?}",
                left.iter()
                    .map(|s| format!("{} {}", s.method, s.url))
                    .collect::<Vec<_>>()
            );
        }

        /// The body of the `i`th request received, as text.
        pub(crate) fn body(&self, i: usize) -> String {
            String::from_utf8(self.seen.lock().unwrap()[i].body().clone()).unwrap()
        }

        /// A header of the `i`th request received.
        pub(crate) fn header(&self, i: usize, name: http::header::HeaderName) -> Option<String> {
            self.seen.lock().unwrap()[i]
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        }
    }

    #[async_trait]
    impl Transport for Script {
        async fn send(&self, req: Request) -> Result<Answer, TransportError> {
            let step = self
                .steps
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected request {} {}", req.method(), req.uri()));
            assert_eq!(
                (req.method(), req.uri().to_string()),
                (&step.method, step.url.clone()),
                "not the expected request"
            );
            self.seen.lock().unwrap().push(req);
            Ok(http::Response::builder()
                .status(step.status)
                .body(step.body)
                .unwrap())
        }
    }
}
