//! Answers from the identity provider and GitLab, read with a size bound:
//! a provider that is broken or hostile must not make the gate hold tens of
//! megabytes per login. Past the bound the answer is refused with an error
//! that says so.

/// Discovery documents, key sets, token, userinfo and GraphQL answers are
/// a few kilobytes; JWT access tokens of some providers a few more.
pub(crate) const PROVIDER_ANSWER_LIMIT: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the answer failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("{0}")]
    Json(#[source] serde_json::Error),
}

/// The body of `resp`, at most `limit` bytes of it.
pub(crate) async fn bytes(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `body` on a loopback port, with or without a length.
    async fn serve(body: Vec<u8>, chunked: bool) -> String {
        use axum::body::Body;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move {
                if chunked {
                    let stream = futures::stream::iter(
                        body.chunks(64 * 1024)
                            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                            .collect::<Vec<_>>(),
                    );
                    Body::from_stream(stream)
                } else {
                    Body::from(body)
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn answers_past_the_bound_are_refused_with_or_without_a_length() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut big = b"{\"access_token\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', 32 << 20));
        big.extend_from_slice(b"\"}");
        for chunked in [false, true] {
            let url = serve(big.clone(), chunked).await;
            let resp = http.get(&url).send().await.unwrap();
            let got = bytes(resp, PROVIDER_ANSWER_LIMIT).await;
            assert!(
                matches!(got, Err(BodyError::TooLarge(_))),
                "chunked {chunked}: {got:?}"
            );
        }
        let url = serve(b"{\"a\":1}".to_vec(), true).await;
        let resp = http.get(&url).send().await.unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&bytes(resp, PROVIDER_ANSWER_LIMIT).await.unwrap()).unwrap();
        assert_eq!(v["a"], 1);
    }
}
