//! Leader election on a `coordination.k8s.io/v1` Lease, so several operator
//! replicas can run (for a faster failover) while only one reconciles: two
//! controllers applying the same children would fight over them.
//!
//! Every write is a create or a replace carrying the `resourceVersion` that
//! was read, so two candidates racing for an expired lease cannot both win:
//! the API server refuses the second write with 409 Conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// The Lease's name, in the operator's namespace.
pub const LEASE_NAME: &str = "hookwarden-operator";

/// How long a lease holds without renewal, and how often the holder renews.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// A holder that has not renewed for this long has lost the lease.
    pub lease: Duration,
    /// How often the holder renews (and a candidate retries).
    pub renew: Duration,
}

impl Default for Timing {
    /// 15 s lease, 5 s renewal: a crashed leader is replaced within ~20 s,
    /// and two renewals may fail before the lease is at risk.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        }
    }
}

/// Why the Lease could not be read or written (a lost race is not an error).
#[derive(Debug, thiserror::Error)]
#[error("{action} Lease {namespace}/{name}: {source}")]
pub struct LeaseError {
    action: &'static str,
    namespace: String,
    name: String,
    source: kube::Error,
}

/// One candidate for the lease.
#[derive(Clone, Debug)]
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
}

fn conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

impl Elector {
    /// A candidate named `identity` (unique per replica: the pod name) for
    /// the Lease `name` in `namespace`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
        }
    }

    fn error(&self, action: &'static str, source: kube::Error) -> LeaseError {
        LeaseError {
            action,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.timing.lease.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One round: takes the lease when it is free, expired or already ours,
    /// renews it when ours. `Ok(true)`: this candidate holds it now.
    ///
    /// Expiry compares the holder's `renewTime` with this host's clock, as
    /// client-go's first implementation did; clocks of one cluster are
    /// assumed to be within a fraction of the lease.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaseError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| self.error("reading", source))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(error) if conflict(&error) => Ok(false),
                Err(error) => Err(self.error("creating", error)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let ours = holder == self.identity;
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(seconds)) => {
                // Saturating: only a unit error can fail it, and a
                // SignedDuration has none; a failure keeps the holder.
                renewed
                    .saturating_add(SignedDuration::from_secs(i64::from(seconds)))
                    .is_ok_and(|until| until < now)
            }
            // A lease without a renewal time or duration protects nobody.
            _ => true,
        };
        if !ours && !holder.is_empty() && !expired {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(self.lease_seconds());
        // `lease.metadata.resource_version` is the one read: a concurrent
        // writer makes this replace fail with 409 instead of overwriting.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if conflict(&error) => Ok(false),
            Err(error) => Err(self.error("updating", error)),
        }
    }

    /// Gives the lease up, as client-go's `ReleaseOnCancel` does: when this
    /// candidate still holds it, the holder is cleared and the duration set
    /// to 1 s, so a standby takes it at its next try instead of waiting for
    /// it to expire. `Ok(false)`: it was not ours (any more), nothing done.
    /// Call it only once the controller has stopped.
    pub async fn release(&self) -> Result<bool, LeaseError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| self.error("reading", source))?
        else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        // With the resourceVersion read: a replica that took the lease in
        // the meantime keeps it (409).
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if conflict(&error) => Ok(false),
            Err(error) => Err(self.error("releasing", error)),
        }
    }

    /// Waits until this candidate holds the lease, retrying every renewal
    /// period; API errors are logged and retried.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "acquired the lease");
                    return;
                }
                Ok(false) => {
                    tracing::debug!(identity = %self.identity, "another replica leads; waiting")
                }
                Err(error) => tracing::warn!(%error, "cannot take the lease; retrying"),
            }
            tokio::time::sleep(self.timing.renew).await;
        }
    }

    /// Renews the held lease every renewal period; returns once it is lost:
    /// taken by another replica, or not renewed for a whole lease duration
    /// minus one period (stopping before another replica may take over).
    pub async fn hold(&self) {
        let give_up = self.timing.lease.saturating_sub(self.timing.renew);
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.timing.renew).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!(identity = %self.identity, "the lease was taken over");
                    return;
                }
                Err(error) => tracing::warn!(%error, "cannot renew the lease"),
            }
            if renewed.elapsed() >= give_up {
                tracing::warn!(identity = %self.identity, "the lease could not be renewed in time");
                return;
            }
        }
    }
}
