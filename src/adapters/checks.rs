//! What an adapter needs from the running service, and nothing more: the
//! core's settings, the metrics, and the asynchronous check. `server`
//! implements it for its state, so adapters never name the wiring above
//! them. Handlers are generic over it, so a check costs no allocation or
//! dynamic call for the indirection.

use std::future::Future;

use crate::core::{CheckRequest, Decision, Settings};
use crate::metrics::Metrics;

pub trait Checks: Clone + Send + Sync + 'static {
    /// The configuration the core decides with.
    fn settings(&self) -> &Settings;

    /// Where adapters count the checks they refuse before deciding.
    fn metrics(&self) -> &Metrics;

    /// Decides about `req` (consulting the authorizer for bearer
    /// credentials), records the check's metric for `controller` and logs
    /// a refusal under `reference` (the id its page shows).
    fn run(
        &self,
        controller: &'static str,
        reference: &crate::adapters::Reference<'_>,
        req: &CheckRequest<'_>,
    ) -> impl Future<Output = Decision> + Send;
}
