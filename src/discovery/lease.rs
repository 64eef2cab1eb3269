//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder
//! writes routing objects; every replica watches and serves checks.
//!
//! Expiry is judged on the local monotonic clock, as client-go does: a
//! candidate takes over when the Lease record has not changed for the
//! holder's `leaseDurationSeconds` since this replica first saw it, so clock
//! skew between nodes cannot cause two leaders. Writes carry the
//! resourceVersion that was read, so two candidates cannot both win.
//! A leader that cannot renew for two thirds of the duration steps down
//! before anyone else may take over.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;

use super::metrics::DiscoveryMetrics;
use crate::config::discovery::LeaseConfig;

pub(crate) struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    leader: watch::Sender<bool>,
    metrics: DiscoveryMetrics,
    /// resourceVersion of the record last read, and when it was first seen.
    observed: Option<(String, Instant)>,
    last_renew: Option<Instant>,
}

impl Elector {
    pub(crate) fn new(
        api: Api<Lease>,
        cfg: LeaseConfig,
        leader: watch::Sender<bool>,
        metrics: DiscoveryMetrics,
    ) -> Self {
        Elector {
            api,
            cfg,
            leader,
            metrics,
            observed: None,
            last_renew: None,
        }
    }

    fn retry_period(&self) -> Duration {
        (self.cfg.duration / 5).max(Duration::from_millis(100))
    }

    fn renew_deadline(&self) -> Duration {
        self.cfg.duration * 2 / 3
    }

    fn set_leader(&mut self, on: bool) {
        if *self.leader.borrow() != on {
            if on {
                tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.name, "became leader");
            } else {
                tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.name, "stopped leading");
            }
        }
        self.leader.send_replace(on);
        self.metrics.leader.set(i64::from(on));
        if !on {
            self.last_renew = None;
        }
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Campaigns and renews until `shutdown`, then releases the Lease so a
    /// successor need not wait for it to expire.
    pub(crate) async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            // The client retries some failures (503, 429) by itself, so a
            // request can hang for long; a leader must not wait past its
            // renew deadline for an answer.
            let budget = self.until_deadline().unwrap_or(self.retry_period());
            let budget = budget
                .min(self.retry_period())
                .max(Duration::from_millis(10));
            if tokio::time::timeout(budget, self.step()).await.is_err() {
                tracing::warn!(
                    "no answer from the API server about Lease {}",
                    self.cfg.name
                );
            }
            self.check_deadline();
            let pause = self
                .until_deadline()
                .map_or(self.retry_period(), |d| d.min(self.retry_period()));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = &mut shutdown => break,
            }
        }
        if self.is_leader() {
            self.set_leader(false);
            // Best effort, bounded: an unreachable API server must not
            // hold up shutdown (the Lease then simply expires).
            let limit = self.retry_period().max(Duration::from_secs(1));
            if tokio::time::timeout(limit, self.release()).await.is_err() {
                tracing::warn!("could not release Lease {} in time", self.cfg.name);
            }
        }
        Ok(())
    }

    fn record(&self, transitions: i32, acquire: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(
                self.cfg.duration.as_secs().clamp(1, i32::MAX as u64) as i32
            ),
            acquire_time: Some(acquire.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One round: read the Lease, then create, renew or take it over.
    async fn step(&mut self) {
        let current = match self.api.get_opt(&self.cfg.name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("reading Lease {}: {e}", self.cfg.name);
                self.check_deadline();
                return;
            }
        };
        let Some(lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.record(0, None)),
            };
            match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => self.won(),
                Err(e) => tracing::debug!("creating Lease: {e}"),
            }
            return;
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let now = Instant::now();
        let seen_at = match &self.observed {
            Some((seen_rv, at)) if *seen_rv == rv => *at,
            _ => {
                self.observed = Some((rv.clone(), now));
                now
            }
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.cfg.duration);
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == self.cfg.identity {
            self.record(transitions, spec.acquire_time.clone())
        } else if holder.is_empty() || now.duration_since(seen_at) >= duration {
            self.record(transitions + 1, None)
        } else {
            // Someone else holds a live Lease.
            if self.is_leader() {
                self.set_leader(false);
            }
            return;
        };
        let mut updated = lease;
        updated.spec = Some(next);
        // `replace` sends the resourceVersion read above: if anyone wrote
        // the Lease since, this fails with 409 and nobody is harmed.
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &updated)
            .await
        {
            Ok(l) => {
                self.observed = l.metadata.resource_version.map(|rv| (rv, Instant::now()));
                self.won();
            }
            Err(e) => {
                tracing::debug!("writing Lease: {e}");
                self.check_deadline();
            }
        }
    }

    fn won(&mut self) {
        self.last_renew = Some(Instant::now());
        self.set_leader(true);
    }

    /// Time left before a leader must have renewed (None when not leading).
    fn until_deadline(&self) -> Option<Duration> {
        if !self.is_leader() {
            return None;
        }
        let renewed = self.last_renew?;
        Some((renewed + self.renew_deadline()).saturating_duration_since(Instant::now()))
    }

    fn check_deadline(&mut self) {
        if self.is_leader()
            && self
                .last_renew
                .is_none_or(|t| t.elapsed() >= self.renew_deadline())
        {
            tracing::warn!("could not renew the Lease in time; stepping down");
            self.set_leader(false);
        }
    }

    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.cfg.identity.as_str());
        if !ours {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("released Lease {}", self.cfg.name),
            Err(e) => tracing::warn!("releasing Lease {}: {e}", self.cfg.name),
        }
    }
}
