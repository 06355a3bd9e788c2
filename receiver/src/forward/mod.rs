//! The forwarder: delivers what a `WebhookSubscription` selects from
//! JetStream to an HTTP destination, signed with Standard Webhooks, at least
//! once, with retries and dead letters.
//!
//! [`plan`] resolves a subscription into everything the forwarder and the
//! operator must agree on (stream, filters, durable consumer, dead-letter
//! stream, retry policy, destination).

pub mod plan;

pub use plan::{DestinationError, Plan, PlanError, RetryPolicy, check_destination_url};
