//! The end-to-end behaviours of issue 2, written once and run against every
//! controller fixture (`ControllerKind`). Each scenario starts its own
//! stack; on failure the error carries every component's logs.
//!
//! A test file instantiates all of them for one controller with
//! `scenario_tests!(ControllerKind::Nginx);`.
//!
//! Where a controller shapes the answer (ingress-nginx turns every 401 into
//! the `auth-signin` redirect), the scenario asserts what the client finally
//! gets and that nothing reached the provider or the workspace, which holds
//! for every controller.
//!
//! `mod.rs` holds the macro, the runner and the helpers the scenarios
//! share; the scenarios themselves are grouped by theme in `login`,
//! `access`, `tokens`, `upstream`, `sign_out` and `observability`, and
//! re-exported here so `support::scenarios::<name>` names each of them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::client::{Browser, Form, Mode, Resp};
use super::controller::ControllerKind;
use super::stack::{AUTH_HOST, Stack, StackOptions};

mod access;
mod login;
mod observability;
mod sign_out;
mod tokens;
mod upstream;

pub use access::*;
pub use login::*;
pub use observability::*;
pub use sign_out::*;
pub use tokens::*;
pub use upstream::*;

/// Cookie names in https mode (ARCHITECTURE.md, "Cookies").
pub const PASS: &str = "__Host-workspace-gate-pass";
pub const LOGIN: &str = "__Host-workspace-gate-login";
pub const CSRF: &str = "__Host-workspace-gate-csrf";
pub const GATE_COOKIE_PREFIX: &str = "workspace-gate-";

/// Instantiates every scenario as a `#[tokio::test]` for one controller.
#[macro_export]
macro_rules! scenario_tests {
    ($kind:expr) => {
        $crate::scenario_tests!(@each $kind;
            login_lands_on_original_url_with_query,
            second_host_needs_no_new_provider_login_and_gets_its_own_pass,
            other_users_workspace_is_refused_with_not_allowed_page,
            not_allowed_page_names_the_user_and_its_sign_out_lets_them_switch,
            unknown_workspace_host_is_refused,
            pass_for_one_host_is_rejected_on_another,
            transfer_token_is_not_a_pass_and_pass_is_not_a_transfer_token,
            upstream_never_sees_gate_cookies_and_gets_real_identity_headers,
            sixteen_kilobytes_of_app_cookies_reach_the_workspace_intact,
            websocket_works_after_login_and_is_refused_before,
            unauthenticated_fetch_gets_401_and_never_reaches_the_provider,
            sign_out_on_workspace_host_ends_access_there,
            sign_out_on_auth_host_ends_access_everywhere,
            provider_access_token_works_as_bearer_and_wrong_one_gets_401,
            workspace_removed_from_file_is_refused_with_the_old_pass,
            logs_contain_no_token_or_cookie_value,
            refusals_are_logged_with_the_reference_on_the_page,
            owner_change_refuses_the_old_pass,
            owner_annotation_mode_allows_the_owner_only,
            query_transfer_mode_completes_the_login,
            a_pass_in_use_is_renewed_before_it_expires,
            a_form_sent_after_the_pass_expired_is_never_replayed,
            transfer_tokens_stay_out_of_access_logs_and_bound_to_their_browser,
            a_transfer_token_copied_from_an_access_log_is_refused,
            reserved_prefix_never_lets_a_request_through,
            expired_access_token_is_refreshed_without_a_new_login,
            metrics_count_checks_logins_and_authorizer_calls,
        );
    };
    (@each $kind:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Err(e) = support::scenarios::$name($kind).await {
                    panic!("{e:?}");
                }
            }
        )*
    };
}

/// Starts a stack, runs `body`, and on failure attaches all logs.
async fn run<F, Fut>(kind: ControllerKind, label: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Stack>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_with(StackOptions::new(kind, label), body).await
}

/// [`run`] with stack options (authorization mode, transfer mode, workspaces).
pub async fn run_with<F, Fut>(options: StackOptions, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Stack>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let kind = options.controller;
    let label = options.label.clone();
    let stack = Stack::start(options)
        .await
        .with_context(|| format!("starting the stack for {label} on {}", kind.name()))?;
    let stack = Arc::new(stack);
    // A bound only against hangs; no assertion depends on time.
    let result = tokio::time::timeout(Duration::from_secs(120), body(stack.clone())).await;
    let diagnostics = stack.diagnostics();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.context(format!(
            "scenario {label} on {}\n{diagnostics}",
            kind.name()
        ))),
        Err(_) => bail!(
            "scenario {label} on {} hung for 120 s\n{diagnostics}",
            kind.name()
        ),
    }
}

// ---------------------------------------------------------------- helpers

/// What a request that needs a sign-in but is no navigation (a `fetch()`,
/// a WebSocket handshake, a script without a valid token) gets through
/// `kind`: 401, except where the check is ingress-nginx's `auth-url`,
/// which sends every 401 to `auth-signin`; there the gate answers 403.
pub fn sign_in_refusal(kind: ControllerKind) -> u16 {
    match kind {
        ControllerKind::Nginx | ControllerKind::TraefikIngressNginx => 403,
        _ => 401,
    }
}

/// Navigates to `https://<host><path>` and requires landing there (200,
/// same URL) with the echo page showing `user`.
pub async fn visit(s: &Stack, b: &Browser, host: &str, path: &str) -> anyhow::Result<Resp> {
    let url = s.url(host, path);
    let r = b.navigate(&url).await?;
    ensure!(
        r.status == 200 && r.url.as_str() == url,
        "navigating to {url} as {:?} did not land there: {}\nhops: {:#?}",
        b.user,
        r.describe(),
        b.hops()
    );
    let user = b.user.clone().unwrap_or_default();
    ensure!(
        r.body.contains(&format!(r#"<b id="user">{user}</b>"#)),
        "the workspace page does not show X-Workspace-User {user}: {}",
        r.describe()
    );
    Ok(r)
}

fn provider_hops(s: &Stack, b: &Browser) -> Vec<String> {
    b.hops()
        .into_iter()
        .filter(|h| h.url.starts_with(s.provider.issuer()))
        .map(|h| format!("{} {} -> {}", h.method, h.url, h.status))
        .collect()
}

fn hops_text(b: &Browser) -> String {
    b.hops()
        .iter()
        .map(|h| format!("  {} {} -> {}", h.method, h.url, h.status))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The echo's record of the last request that reached the workspace on `path`.
fn last_seen_on(s: &Stack, path_prefix: &str) -> anyhow::Result<super::echo::Seen> {
    s.echo
        .seen()
        .into_iter()
        .rev()
        .find(|r| r.uri.starts_with(path_prefix))
        .with_context(|| format!("no request for {path_prefix} reached the workspace"))
}

/// Starts a login on `host` (which sets `b`'s bind cookie there), lets
/// the auth host hand it over without following the hand-over, and
/// returns the transfer token (from the redirect's query or fragment, or
/// the form).
async fn transfer_token_for(s: &Stack, b: &Browser, host: &str) -> anyhow::Result<String> {
    let start = format!(
        "{}?rd={}",
        s.url(host, "/.workspace-gate/start"),
        urlencode(&s.url(host, "/"))
    );
    let r = b.get(&start, Mode::Navigate, &[]).await?;
    let to_auth = r
        .location()
        .map(|l| r.url.join(&l))
        .transpose()?
        .with_context(|| format!("the login start did not redirect: {}", r.describe()))?;
    ensure!(
        to_auth
            .as_str()
            .starts_with(&s.url(AUTH_HOST, "/auth/start?")),
        "the login start went to {to_auth}, not the auth host"
    );
    let r = b.get(to_auth.as_str(), Mode::Navigate, &[]).await?;
    if let Some(loc) = r.location() {
        let u = r.url.join(&loc)?;
        if let Some((_, t)) = u.query_pairs().find(|(k, _)| k == "token") {
            return Ok(t.to_string());
        }
        if let Some(t) = u.fragment().and_then(|f| f.strip_prefix("t=")) {
            return Ok(t.to_string());
        }
        bail!(
            "/auth/start redirected without a transfer token: {}",
            r.describe()
        );
    }
    let f = Form::parse(&r.body).with_context(|| format!("no transfer form: {}", r.describe()))?;
    ensure!(
        f.action
            .starts_with(&s.url(host, "/.workspace-gate/callback")),
        "transfer form posts to {} instead of {host}'s callback",
        f.action
    );
    f.hidden
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .with_context(|| format!("transfer form without `token`: {f:?}"))
}

/// The transfer tokens `b` was handed in URL fragments so far.
fn fragment_tokens(b: &Browser) -> Vec<String> {
    b.hops()
        .iter()
        .filter_map(|h| h.url.split_once("#t=").map(|(_, t)| t.to_string()))
        .collect()
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Signs out by navigating to `url` (GET, as a link would); falls back to a
/// POST form submission when the gate wants POST.
async fn sign_out(b: &Browser, url: &str) -> anyhow::Result<Resp> {
    let r = b.navigate(url).await?;
    if r.status == 405 {
        return b
            .send(reqwest::Method::POST, url, Mode::Navigate, &[], Some(&[]))
            .await;
    }
    Ok(r)
}

/// Sum of the samples of `metric` whose line contains every one of `labels`.
fn metric_sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
