//! The asynchronous half of a check: runs `decide()` and, when it asks for
//! it, the authorizer for bearer tokens. Every adapter calls [`run`].

use std::time::Instant;

use crate::authz::Outcome;
use crate::core::{Allow, CheckRequest, Decision, Page, decide};

use super::{AppState, now};

impl crate::adapters::Checks for AppState {
    fn settings(&self) -> &crate::core::Settings {
        &self.inner.settings
    }

    fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    fn run(
        &self,
        controller: &'static str,
        reference: &crate::adapters::Reference<'_>,
        req: &CheckRequest<'_>,
    ) -> impl Future<Output = Decision> + Send {
        run(self, controller, reference, req)
    }
}

/// Decides about `req`, consulting the authorizer for bearer credentials,
/// records the metric for `controller` and logs a refusal.
pub(crate) async fn run(
    state: &AppState,
    controller: &'static str,
    reference: &crate::adapters::Reference<'_>,
    req: &CheckRequest<'_>,
) -> Decision {
    let started = Instant::now();
    let snapshot = state.index.current();
    let decision = decide(&snapshot, &state.keyring, &state.settings, now(), req);
    drop(snapshot);
    let decision = match decision {
        // Boxed: the authorizer's future (HTTP calls to GitLab or the
        // provider) is large, and inline it would make every check's future
        // as large, to be moved on every request that carries a pass.
        Decision::Bearer {
            token,
            workspace,
            upstream_cookie,
        } => match Box::pin(state.authz.bearer(&token, &workspace)).await {
            Ok(Outcome::Allowed(who)) => Decision::Allow(Allow {
                who: who.into(),
                workspace,
                upstream_cookie,
                // The header carried the credential: never pass it on.
                upstream_authorization: None,
                renewed_pass: None,
            }),
            Ok(Outcome::Denied) => Decision::Deny(Page::NotAllowed),
            Ok(Outcome::InvalidToken) => Decision::Deny(Page::SignInRequired),
            Err(e) => {
                // An outage, not a verdict on the token: said as one.
                tracing::warn!(error = %e, "authorizer failed for a bearer token; refusing");
                Decision::Deny(Page::Unavailable)
            }
        },
        Decision::Redirect {
            redeems: Some(jti), ..
        } if !state.first_redemption(&jti) => {
            tracing::warn!("transfer token presented twice; refusing");
            // Counted as on the reserved routes, whichever path redeemed it.
            state.metrics.login("failed", "transfer_replayed");
            Decision::Deny(Page::SignInFailed)
        }
        other => other,
    };
    state.metrics.check(
        controller,
        decision.label(),
        started.elapsed().as_secs_f64(),
    );
    if let Decision::Deny(page) = &decision {
        crate::adapters::log_refusal(
            controller,
            reference.get(),
            req.host,
            page.label(),
            crate::adapters::refusal_reason(*page),
        );
    }
    decision
}
