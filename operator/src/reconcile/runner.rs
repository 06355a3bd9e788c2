//! How each of the three controllers (endpoints, subscriptions, pools) is
//! run, defined once: a failed pass is retried after a delay that doubles
//! with each consecutive failure of that object ([`backoff`]), a
//! successful one resets it, and every result is logged. Each controller
//! keeps what is its own: its watches, its context and its pass.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{StreamExt, TryFuture};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// The delay before the first retry of a failed pass; it doubles with each
/// further failure of the same endpoint, up to [`MAX_ERROR_RETRY`].
pub(super) const ERROR_RETRY: Duration = Duration::from_secs(5);
/// The longest delay between retries: an API server outage is not hammered,
/// and recovery is noticed within minutes.
pub(super) const MAX_ERROR_RETRY: Duration = Duration::from_secs(300);

/// How soon an endpoint whose stream is not ready looks again (NATS may be
/// restarting); a fixed delay, not an error backoff: nothing failed in the
/// API.
pub(super) const STREAM_RETRY: Duration = Duration::from_secs(30);

/// How long an endpoint with a missing Secret waits before it looks again.
/// Creating the Secret triggers a pass at once (Secrets are watched), so this
/// only bounds how stale the condition can get: no hot loop.
pub(super) const MISSING_SECRET_RETRY: Duration = Duration::from_secs(120);

/// The retry delay after `failures` consecutive failed passes (1 or more).
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ERROR_RETRY
        .saturating_mul(1 << doublings)
        .min(MAX_ERROR_RETRY)
}

/// Consecutive failed passes per object, for [`backoff`]; a successful
/// pass removes the entry.
pub(crate) struct Failures<K: Resource>(Mutex<HashMap<ObjectRef<K>, u32>>);

impl<K: Resource> Default for Failures<K> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<K> Failures<K>
where
    K: Resource,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<K>, u32>> {
        // A panic while holding the lock leaves only counts behind.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One more failed pass of `object`: how many in a row now, and how
    /// long until it is passed again.
    fn failed(&self, object: &K) -> (u32, Duration) {
        let mut counts = self.counts();
        let count = counts.entry(ObjectRef::from_obj(object)).or_default();
        *count = count.saturating_add(1);
        (*count, backoff(*count))
    }

    /// A pass of `object` succeeded: its next failure waits the shortest
    /// delay again.
    pub(crate) fn succeeded(&self, object: &K) {
        self.counts().remove(&ObjectRef::from_obj(object));
    }
}

/// The context of a controller run by [`run`]: where it counts failures.
pub(crate) trait Retried<K: Resource> {
    fn failures(&self) -> &Failures<K>;
}

/// Passes `object` again after the backoff of its consecutive failures.
fn error_policy<K, E, C>(object: Arc<K>, error: &E, ctx: Arc<C>) -> Action
where
    K: Resource,
    K::DynamicType: Default + Eq + Hash + Clone,
    E: std::fmt::Display,
    C: Retried<K>,
{
    let (failures, retry) = ctx.failures().failed(&object);
    tracing::warn!(
        kind = %K::kind(&K::DynamicType::default()),
        namespace = object.namespace().unwrap_or_default(),
        name = object.name_any(),
        failures,
        retry_secs = retry.as_secs(),
        %error,
        "reconcile failed; retrying"
    );
    Action::requeue(retry)
}

/// Runs `controller` (its watches set up) until `shutdown` completes: each
/// object through `reconcile`, a failure retried by the backoff of
/// [`Failures`] (`reconcile` reports its successes there), every result
/// logged.
pub(crate) fn run<K, C, Fut>(
    controller: Controller<K>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    reconcile: impl FnMut(Arc<K>, Arc<C>) -> Fut,
    context: Arc<C>,
) -> impl Future<Output = ()>
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Debug + Unpin,
    C: Retried<K>,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy::<K, Fut::Error, C>, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(error) => tracing::warn!(
                    kind = %K::kind(&K::DynamicType::default()),
                    %error,
                    "reconcile failed"
                ),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_ERROR_RETRY);
        assert_eq!(backoff(0), ERROR_RETRY);
    }
}
