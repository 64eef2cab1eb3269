//! Prometheus metrics, served on the admin port at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    controller: &'static str,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthzLabels {
    mode: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 10 µs .. ~5 s
    Histogram::new(exponential_buckets(0.00001, 3.0, 13))
}

/// Controllers and decisions, for the pre-resolved check metrics.
const CONTROLLERS: [&str; 4] = ["nginx", "traefik", "envoy_grpc", "envoy_http"];
const DECISIONS: [&str; 11] = [
    "allow",
    "bearer",
    "sign_in",
    "unauthorized",
    "forbidden",
    "unknown_host",
    "sign_in_failed",
    "signed_out",
    "not_found",
    "unavailable",
    "redirect",
];

pub struct Metrics {
    checks: Family<CheckLabels, Counter>,
    /// The check counters and histograms, looked up once: a check then
    /// touches only atomics, no lock or hash.
    check_counters: Vec<Counter>,
    check_histograms: Vec<Histogram>,
    check_seconds: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    logins: Family<StageLabels, Counter>,
    authz_calls: Family<AuthzLabels, Counter>,
    authz_cache_hits: Family<ModeLabel, Counter>,
    refreshes: Family<ResultLabel, Counter>,
    index_workspaces: Gauge,
    index_reloads: Family<ResultLabel, Counter>,
    tls_reloads: Family<ResultLabel, Counter>,
    https_connections: Counter,
    nginx_answers_too_large: Counter,
    oidc_ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let checks: Family<CheckLabels, Counter> = Family::default();
        let check_seconds: Family<ControllerLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let mut check_counters = Vec::new();
        for controller in CONTROLLERS {
            for decision in DECISIONS {
                check_counters.push(
                    checks
                        .get_or_create(&CheckLabels {
                            controller,
                            decision,
                        })
                        .clone(),
                );
            }
        }
        let check_histograms = CONTROLLERS
            .iter()
            .map(|controller| {
                check_seconds
                    .get_or_create(&ControllerLabel { controller })
                    .clone()
            })
            .collect();
        Metrics {
            checks,
            check_counters,
            check_histograms,
            check_seconds,
            logins: Family::default(),
            authz_calls: Family::default(),
            authz_cache_hits: Family::default(),
            refreshes: Family::default(),
            index_workspaces: Gauge::default(),
            index_reloads: Family::default(),
            tls_reloads: Family::default(),
            https_connections: Counter::default(),
            nginx_answers_too_large: Counter::default(),
            oidc_ready: Gauge::default(),
        }
    }
}

/// Log lines dropped because the log output did not keep up. There is one
/// log writer per process, so this counter is the process's, not a
/// `Metrics` value's.
pub(crate) fn log_lines_dropped() -> &'static Counter {
    static DROPPED: std::sync::LazyLock<Counter> = std::sync::LazyLock::new(Counter::default);
    &DROPPED
}

impl Metrics {
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("workspace_gate");
        r.register(
            "log_lines_dropped",
            "Log lines dropped because the log output (stdout) did not take them in time",
            log_lines_dropped().clone(),
        );
        r.register(
            "checks",
            "Auth checks answered, by controller and decision",
            self.checks.clone(),
        );
        r.register(
            "check_duration_seconds",
            "Time to answer an auth check, by controller",
            self.check_seconds.clone(),
        );
        r.register(
            "logins",
            "Login flow events: started, completed, failed (with a reason)",
            self.logins.clone(),
        );
        r.register(
            "authorizer_calls",
            "Authorizer calls that missed the cache, by mode and result",
            self.authz_calls.clone(),
        );
        r.register(
            "authorizer_cache_hits",
            "Authorization decisions answered from the cache",
            self.authz_cache_hits.clone(),
        );
        r.register(
            "token_refreshes",
            "Provider token refreshes, by result",
            self.refreshes.clone(),
        );
        r.register(
            "index_workspaces",
            "Workspaces in the current index",
            self.index_workspaces.clone(),
        );
        r.register(
            "index_reloads",
            "Workspace file loads, by result",
            self.index_reloads.clone(),
        );
        r.register(
            "tls_certificate_reloads",
            "Reloads of the listen.https certificate after its files changed, by result (failed keeps the previous one)",
            self.tls_reloads.clone(),
        );
        r.register(
            "oidc_ready",
            "1 when the identity provider's discovery document and keys are loaded: logins need them, checks do not",
            self.oidc_ready.clone(),
        );
        r.register(
            "https_connections",
            "Connections accepted on listen.https (TLS handshake completed)",
            self.https_connections.clone(),
        );
        r.register(
            "nginx_answers_too_large",
            "Allowed nginx checks refused (403) because the answer would not fit the proxy-buffer-size the Ingress gives the check",
            self.nginx_answers_too_large.clone(),
        );
    }

    pub fn nginx_answer_too_large(&self) {
        self.nginx_answers_too_large.inc();
    }

    pub fn check(&self, controller: &'static str, decision: &'static str, seconds: f64) {
        let c = CONTROLLERS.iter().position(|x| *x == controller);
        let d = DECISIONS.iter().position(|x| *x == decision);
        if let (Some(c), Some(d)) = (c, d) {
            self.check_counters[c * DECISIONS.len() + d].inc();
            self.check_histograms[c].observe(seconds);
            return;
        }
        self.checks
            .get_or_create(&CheckLabels {
                controller,
                decision,
            })
            .inc();
        self.check_seconds
            .get_or_create(&ControllerLabel { controller })
            .observe(seconds);
    }

    pub fn login(&self, stage: &'static str, reason: &'static str) {
        self.logins
            .get_or_create(&StageLabels { stage, reason })
            .inc();
    }

    pub fn authz_call<T, E: AuthzLabel>(&self, mode: &'static str, result: &Result<T, E>)
    where
        T: OutcomeLabel,
    {
        let result = match result {
            Ok(o) => o.outcome_label(),
            Err(e) => e.error_label(),
        };
        self.authz_calls
            .get_or_create(&AuthzLabels { mode, result })
            .inc();
    }

    pub fn authz_cache_hit(&self, mode: &'static str) {
        self.authz_cache_hits
            .get_or_create(&ModeLabel { mode })
            .inc();
    }

    pub fn token_refresh(&self, result: &'static str) {
        self.refreshes.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn index(&self, workspaces: usize, result: &'static str) {
        self.index_workspaces.set(workspaces as i64);
        self.index_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }
}

impl Metrics {
    pub fn tls_reload(&self, result: &'static str) {
        self.tls_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn https_connection(&self) {
        self.https_connections.inc();
    }
    /// Whether logins can reach the identity provider (set when scraped).
    pub fn oidc_ready(&self, ready: bool) {
        self.oidc_ready.set(i64::from(ready));
    }
}

/// Metric label of an authorization outcome.
pub trait OutcomeLabel {
    fn outcome_label(&self) -> &'static str;
}

/// Metric label of an authorization error.
pub trait AuthzLabel {
    fn error_label(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_resolved_check_counters_are_the_exported_ones() {
        let m = Metrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        m.check("nginx", "allow", 0.0001);
        m.check("envoy_grpc", "forbidden", 0.0001);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains("workspace_gate_checks_total{controller=\"nginx\",decision=\"allow\"} 1")
        );
        assert!(out.contains(
            "workspace_gate_checks_total{controller=\"envoy_grpc\",decision=\"forbidden\"} 1"
        ));
        assert!(
            out.contains("workspace_gate_check_duration_seconds_count{controller=\"nginx\"} 1")
        );
    }
}
