//! The forwarder: delivers what a `WebhookSubscription` selects from
//! JetStream to an HTTP destination, signed with Standard Webhooks, at least
//! once, with retries and dead letters.
//!
//! [`plan`] resolves a subscription into everything the forwarder and the
//! operator must agree on (stream, filters, durable consumer, dead-letter
//! stream, retry policy, destination). [`outcome`] decides, purely, what an
//! attempt's result means for the event; [`signing`] signs requests;
//! [`delivery`] sends one event to the destination.

pub mod delivery;
pub mod outcome;
pub mod plan;
pub mod signing;

pub use plan::{DestinationError, Plan, PlanError, RetryPolicy, check_destination_url};
