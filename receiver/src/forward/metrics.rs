//! The forwarder's Prometheus metrics, served on the operations port like
//! the receiver's ([`crate::metrics`], [`crate::ops`]). Labels are bounded: the subscription
//! name comes from the manifest, outcomes from a fixed set.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::metrics::Exposition;

/// What became of an event, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The destination answered 2xx; acknowledged.
    Delivered,
    /// Sent back to JetStream for a later attempt.
    Retried,
    /// Stored in the dead-letter stream; acknowledged.
    DeadLettered,
    /// Skipped by the CEL filter; acknowledged.
    Filtered,
    /// The dead-letter publish failed: sent back for a later attempt.
    DeadLetterFailed,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Filtered => "filtered",
            Self::DeadLetterFailed => "dead_letter_failed",
        }
    }
}

/// Labels of a counted outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `<namespace>/<name>`.
    pub subscription: String,
    /// [`Outcome::as_str`].
    pub outcome: String,
}

/// Labels naming the subscription.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabels {
    /// `<namespace>/<name>`.
    pub subscription: String,
}

/// The forwarder's metrics (prefix `hookwarden_forward_`).
#[derive(Debug)]
pub struct ForwardMetrics {
    registry: Registry,
    subscription: String,
    /// Events by outcome.
    pub deliveries: Family<OutcomeLabels, Counter>,
    /// Duration of HTTP attempts.
    pub attempt_seconds: Family<SubscriptionLabels, Histogram>,
    /// Deliveries in flight.
    pub in_flight: Gauge,
    /// Events waiting behind an earlier one of their subject.
    pub ordered_waiting: Gauge,
    /// Unix seconds of the last 2xx.
    pub last_success: Gauge<i64, AtomicI64>,
    /// CEL filter evaluations that failed (the event counts as not matching).
    pub filter_errors: Family<SubscriptionLabels, Counter>,
    /// 1 while NATS is disconnected.
    pub nats_disconnected: Gauge,
    /// Events not yet delivered to the forwarder, as of the last one.
    pub pending: Family<SubscriptionLabels, Gauge>,
    /// Deliveries held back by `delivery.maxPerSecond`.
    pub rate_limited: Family<SubscriptionLabels, Counter>,
}

fn attempt_histogram() -> Histogram {
    // 1 ms to ~65 s: a local service answers in milliseconds, the timeout
    // is at most 300 s (those land in +Inf).
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl ForwardMetrics {
    /// The metrics of subscription `<namespace>/<name>`.
    pub fn new(subscription: &str) -> Self {
        let mut registry = Registry::with_prefix("hookwarden_forward");
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        let attempt_seconds = Family::<SubscriptionLabels, Histogram>::new_with_constructor(
            attempt_histogram as fn() -> Histogram,
        );
        let in_flight = Gauge::default();
        let ordered_waiting = Gauge::default();
        let last_success = Gauge::<i64, AtomicI64>::default();
        let filter_errors = Family::<SubscriptionLabels, Counter>::default();
        let nats_disconnected = Gauge::default();
        let pending = Family::<SubscriptionLabels, Gauge>::default();
        let rate_limited = Family::<SubscriptionLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Events by outcome (delivered, retried, dead_lettered, filtered, dead_letter_failed)",
            deliveries.clone(),
        );
        registry.register(
            "attempt_seconds",
            "Duration of HTTP delivery attempts, answered or not",
            attempt_seconds.clone(),
        );
        registry.register(
            "in_flight",
            "Deliveries awaiting the destination",
            in_flight.clone(),
        );
        registry.register(
            "ordered_waiting",
            "Events waiting behind an earlier event of their subject (orderedPerSubject)",
            ordered_waiting.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last delivery the destination answered 2xx",
            last_success.clone(),
        );
        registry.register(
            "filter_errors",
            "CEL filter evaluations that failed (the event counts as not matching: acknowledged, not delivered)",
            filter_errors.clone(),
        );
        registry.register(
            "nats_disconnected",
            "1 while the NATS connection is down",
            nats_disconnected.clone(),
        );
        registry.register(
            "pending",
            "Events stored for the subscription and not yet delivered to the forwarder, as of the last event received (the consumer's num_pending; 0 once caught up)",
            pending.clone(),
        );
        registry.register(
            "rate_limited",
            "Deliveries that waited because delivery.maxPerSecond was reached",
            rate_limited.clone(),
        );
        registry.register(
            "trace_export_failed_spans",
            "Spans the OTLP endpoint refused or did not take (traces on only); deliveries are not affected",
            crate::telemetry::export_failed_spans(),
        );
        Self {
            registry,
            subscription: subscription.to_owned(),
            deliveries,
            attempt_seconds,
            in_flight,
            ordered_waiting,
            last_success,
            filter_errors,
            nats_disconnected,
            pending,
            rate_limited,
        }
    }

    /// Counts a delivery held back by `delivery.maxPerSecond`.
    pub fn record_rate_limited(&self) {
        self.rate_limited
            .get_or_create(&SubscriptionLabels {
                subscription: self.subscription.clone(),
            })
            .inc();
    }

    /// Records how many events wait behind the one just received (the
    /// backlog a slow or failing destination builds up).
    pub fn set_pending(&self, pending: u64) {
        self.pending
            .get_or_create(&SubscriptionLabels {
                subscription: self.subscription.clone(),
            })
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// Counts one event's outcome.
    pub fn record(&self, outcome: Outcome) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                subscription: self.subscription.clone(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
        if outcome == Outcome::Delivered {
            self.last_success.set(jiff::Timestamp::now().as_second());
        }
    }

    /// Records one attempt's duration.
    pub fn observe_attempt(&self, seconds: f64) {
        self.attempt_seconds
            .get_or_create(&SubscriptionLabels {
                subscription: self.subscription.clone(),
            })
            .observe(seconds);
    }

    /// Counts a failed filter evaluation.
    pub fn record_filter_error(&self) {
        self.filter_errors
            .get_or_create(&SubscriptionLabels {
                subscription: self.subscription.clone(),
            })
            .inc();
    }

    /// How often `outcome` was counted (tests, status).
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                subscription: self.subscription.clone(),
                outcome: outcome.as_str().to_owned(),
            })
            .get()
    }
}

impl Exposition for ForwardMetrics {
    fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_the_last_success_are_exposed() {
        let metrics = ForwardMetrics::new("shop/to-billing");
        metrics.record(Outcome::Delivered);
        metrics.record(Outcome::Retried);
        metrics.record(Outcome::Retried);
        metrics.observe_attempt(0.01);
        metrics.set_pending(41);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"hookwarden_forward_deliveries_total{subscription="shop/to-billing",outcome="retried"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains("hookwarden_forward_last_success_timestamp_seconds "),
            "{text}"
        );
        assert!(
            !text.contains("hookwarden_forward_last_success_timestamp_seconds 0"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hookwarden_forward_attempt_seconds_count{subscription="shop/to-billing"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"hookwarden_forward_pending{subscription="shop/to-billing"} 41"#),
            "{text}"
        );
        assert_eq!(metrics.count(Outcome::Retried), 2);
    }
}
