//! The stream audit: what replaces a periodic resync of ready endpoints.
//!
//! Every child in the cluster is watched, so a ready endpoint needs no pass
//! until something changes; only its JetStream stream can drift (deleted or
//! edited on NATS) without any watch event. The audit checks each ready
//! endpoint's stream once per interval, spread evenly over it, with one
//! JetStream request over the connection its last pass used and no request
//! to the API server, and starts a pass only for a stream that is missing,
//! drifted or unreachable, or that has moved: its leader or the number of
//! current replicas changed since the pass reported them in `StreamReady`
//! (a NATS node lost or back), so the status says where the stream is.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use hookwarden_core::publish::{self, EnsureStreamError, Placement};
use hookwarden_crds::WebhookEndpoint;
use kube::runtime::reflector::{ObjectRef, Store};

use super::stream::Managed;
use crate::ops::{Metrics, StreamCheck};

/// How long an empty audit waits before it looks for ready endpoints again.
const EMPTY_ROUND_PAUSE: Duration = Duration::from_secs(5);

/// The ready endpoints whose streams are checked, as their last pass left
/// them.
#[derive(Debug, Default)]
pub struct StreamAudit {
    streams: Mutex<HashMap<ObjectRef<WebhookEndpoint>, Managed>>,
}

impl StreamAudit {
    /// Checks `endpoint`'s stream from now on, as `managed` describes it.
    pub fn watch(&self, endpoint: ObjectRef<WebhookEndpoint>, managed: Managed) {
        self.lock().insert(endpoint, managed);
    }

    /// Stops checking `endpoint`'s stream: it is not ready, or a pass is
    /// about to look at it anyway.
    pub fn forget(&self, endpoint: &ObjectRef<WebhookEndpoint>) {
        self.lock().remove(endpoint);
    }

    /// How many streams are checked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no stream is checked.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn snapshot(&self) -> Vec<(ObjectRef<WebhookEndpoint>, Managed)> {
        self.lock()
            .iter()
            .map(|(endpoint, managed)| (endpoint.clone(), managed.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<WebhookEndpoint>, Managed>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How one check went, from what JetStream answered (`Ok(None)`: not in
/// sync) and where the last pass reported the stream.
fn verdict(
    found: &Result<Option<Placement>, EnsureStreamError>,
    reported: &Placement,
) -> StreamCheck {
    match found {
        Ok(Some(placement)) if placement == reported => StreamCheck::InSync,
        Ok(Some(_)) => StreamCheck::Moved,
        Ok(None) | Err(EnsureStreamError::NotFound { .. } | EnsureStreamError::Conflict(_)) => {
            StreamCheck::Drifted
        }
        Err(EnsureStreamError::Unreachable { .. } | EnsureStreamError::Rejected { .. }) => {
            StreamCheck::Unreachable
        }
    }
}

/// The pause between two checks so that `count` of them fill `interval`
/// (at least a millisecond, so an empty round cannot spin).
fn spacing(interval: Duration, count: usize) -> Duration {
    let count = u32::try_from(count.max(1)).unwrap_or(u32::MAX);
    (interval / count).max(Duration::from_millis(1))
}

/// Checks the streams of `audit` forever, one per `interval / n`, and sends
/// each endpoint whose stream is not in sync to `passes` (the controller's
/// trigger). Endpoints gone from `endpoints` (deleted) are dropped.
///
/// Each check comes before its pause, not after it: a round that starts
/// with one ready endpoint (an operator just started, endpoints still
/// becoming ready) checks it at once instead of a whole interval later, so
/// the stream gauges the alerts read exist within seconds of a start.
pub async fn run(
    audit: Arc<StreamAudit>,
    endpoints: Store<WebhookEndpoint>,
    interval: Duration,
    metrics: Arc<Metrics>,
    passes: mpsc::UnboundedSender<ObjectRef<WebhookEndpoint>>,
) {
    loop {
        let round = audit.snapshot();
        if round.is_empty() {
            // Endpoints become ready any time: look again soon, not a
            // whole interval later.
            tokio::time::sleep(interval.min(EMPTY_ROUND_PAUSE)).await;
            continue;
        }
        let count = round.len();
        for (endpoint, managed) in round {
            if check(&audit, &endpoints, &metrics, &passes, endpoint, &managed)
                .await
                .is_break()
            {
                // The controller has stopped.
                return;
            }
            // Spread over the endpoints watched now: a first round taken
            // while endpoints are still becoming ready ends early, and the
            // next one includes them.
            tokio::time::sleep(spacing(interval, count.max(audit.len()))).await;
        }
    }
}

/// Checks `endpoint`'s stream once and sends the endpoint to `passes` when
/// it is not in sync; `Break` when the controller has stopped.
async fn check(
    audit: &StreamAudit,
    endpoints: &Store<WebhookEndpoint>,
    metrics: &Metrics,
    passes: &mpsc::UnboundedSender<ObjectRef<WebhookEndpoint>>,
    endpoint: ObjectRef<WebhookEndpoint>,
    managed: &Managed,
) -> ControlFlow<()> {
    if endpoints.get(&endpoint).is_none() {
        audit.forget(&endpoint);
        return ControlFlow::Continue(());
    }
    let checked = publish::check_stream(&managed.jetstream, &managed.target).await;
    // The usage the alerts compare with the stream's limits; an
    // unreachable NATS keeps the last one seen.
    if let Ok(check) = &checked {
        let key = format!(
            "{}/{}",
            endpoint.namespace.as_deref().unwrap_or_default(),
            endpoint.name
        );
        metrics.record_stream_usage(&key, &managed.target.stream, check.usage);
    }
    let found = checked.map(|check| check.placement);
    let verdict = verdict(&found, &managed.placement);
    metrics.record_stream_check(verdict);
    if verdict == StreamCheck::InSync {
        return ControlFlow::Continue(());
    }
    tracing::info!(
        namespace = endpoint.namespace.as_deref().unwrap_or_default(),
        name = %endpoint.name,
        stream = %managed.target.stream,
        result = verdict.as_str(),
        "stream check found the stream out of sync; reconciling"
    );
    // The pass watches it again once the stream is ready.
    audit.forget(&endpoint);
    if passes.unbounded_send(endpoint).is_err() {
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_spread_over_the_interval() {
        let interval = Duration::from_secs(300);
        assert_eq!(spacing(interval, 1000), Duration::from_millis(300));
        assert_eq!(spacing(interval, 1), interval);
        assert_eq!(spacing(interval, 0), interval, "no division by zero");
        assert_eq!(
            spacing(Duration::from_millis(5), 1_000_000),
            Duration::from_millis(1),
            "never a busy loop"
        );
    }

    #[test]
    fn only_a_stream_in_sync_where_it_was_reported_needs_no_pass() {
        let placed = |leader: &str, current| Placement {
            leader: Some(leader.to_owned()),
            current,
            replicas: 3,
        };
        let reported = placed("n1", 3);
        assert_eq!(
            verdict(&Ok(Some(placed("n1", 3))), &reported),
            StreamCheck::InSync
        );
        assert_eq!(
            verdict(&Ok(Some(placed("n2", 3))), &reported),
            StreamCheck::Moved
        );
        assert_eq!(
            verdict(&Ok(Some(placed("n1", 2))), &reported),
            StreamCheck::Moved
        );
        assert_eq!(verdict(&Ok(None), &reported), StreamCheck::Drifted);
        let conflict = Err(EnsureStreamError::Conflict("other subjects".to_owned()));
        assert_eq!(verdict(&conflict, &reported), StreamCheck::Drifted);
        let unreachable = Err(EnsureStreamError::Unreachable {
            stream: "s".to_owned(),
            detail: "timed out".to_owned(),
        });
        assert_eq!(verdict(&unreachable, &reported), StreamCheck::Unreachable);
    }
}
