//! Every answer the gate sends through ingress-nginx fits its default 4 KiB
//! `proxy_buffer_size` (tests/fixtures/nginx/nginx.conf.tmpl renders it on
//! every location, as ingress-nginx does): a larger answer head is a 502.
//! At the limits: a signed-out visit to a URL near the longest `rd`
//! accepted, and a provider whose access tokens are a few kilobytes (JWT
//! access tokens of Keycloak, Entra ID or Okta).

mod support;

use std::time::Duration;

use anyhow::ensure;
use support::controller::ControllerKind;
use support::hostile_provider::{IdToken, USER};
use support::stack::{Stack, StackOptions, WS1};

async fn bounded(s: &Stack, body: impl std::future::Future<Output = anyhow::Result<()>>) {
    match tokio::time::timeout(Duration::from_secs(120), body).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}\n{}", s.diagnostics()),
        Err(_) => panic!("hung\n{}", s.diagnostics()),
    }
}

/// No hop of the browser's way got a 5xx.
fn no_server_error(b: &support::client::Browser) -> anyhow::Result<()> {
    let bad: Vec<_> = b.hops().into_iter().filter(|h| h.status >= 500).collect();
    ensure!(bad.is_empty(), "server errors on the way: {bad:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_visit_to_a_very_long_url_still_logs_in() {
    let s = Stack::start(StackOptions::new(ControllerKind::Nginx, "long-rd"))
        .await
        .expect("stack");
    bounded(&s, async {
        // rd may be up to 4,096 characters: the path and query make it
        // nearly so. A path that alone does not fit lands on the root.
        let path = format!("/{}", "p".repeat(1_500));
        let url = s.url(WS1, &format!("{path}?q={}", "q".repeat(2_400)));
        let alice = s.browser("alice");
        let r = alice.navigate(&url).await?;
        no_server_error(&alice)?;
        ensure!(r.status == 200, "the login did not land: {}", r.describe());
        // The query did not fit the login redirect; the path did.
        ensure!(
            r.url.as_str() == s.url(WS1, &path),
            "landed on {} instead of the path",
            r.url
        );
        // A shorter one comes back whole.
        let bob_url = s.url(WS1, &format!("/{}?x=1", "s".repeat(1_000)));
        let again = s.browser("alice");
        let r = again.navigate(&bob_url).await?;
        no_server_error(&again)?;
        ensure!(
            r.status == 200 && r.url.as_str() == bob_url,
            "{}",
            r.describe()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_with_kilobyte_access_tokens_still_logs_in() {
    let mut options = StackOptions::new(ControllerKind::Nginx, "big-access-token");
    options.authorization = "owner-annotation".into();
    options.hostile_provider = true;
    let s = Stack::start(options).await.expect("stack");
    bounded(&s, async {
        for len in [2_500, 4_000, 8_000] {
            s.provider.hostile().serve(IdToken::with_access_token(len));
            let b = s.browser(USER);
            let r = b.navigate(&s.url(WS1, "/")).await?;
            no_server_error(&b)?;
            ensure!(
                r.status == 200,
                "access token of {len} bytes: {}",
                r.describe()
            );
            // And the next workspace host reuses the login.
            let r = b.navigate(&s.url(WS1, "/again")).await?;
            ensure!(r.status == 200, "{}", r.describe());
        }
        Ok(())
    })
    .await;
}
