//! The forwarder: delivers what a `WebhookSubscription` selects from
//! JetStream to an HTTP destination, signed with Standard Webhooks, at least
//! once, with retries and dead letters.
//!
//! [`plan`] resolves a subscription into everything the forwarder and the
//! operator must agree on (stream, filters, durable consumer, dead-letter
//! stream, retry policy, destination). [`outcome`] decides, purely, what an
//! attempt's result means for the event; [`signing`] signs requests;
//! [`delivery`] sends one event to the destination; [`stored`] reads a
//! stored message and writes its dead letter; [`ordering`] keeps one
//! delivery per subject in flight when asked; [`filter`] is the CEL
//! condition; [`metrics`] what the operations port shows; [`app`] puts
//! them together into the `forward` command's run loop. [`replay`] sends
//! one event in the foreground for `hookwarden replay` and `dlq redrive`.

pub mod app;
pub mod delivery;
pub mod filter;
pub mod metrics;
pub mod ordering;
pub mod outcome;
// Shared with the operator (hookwarden-core).
pub use hookwarden_core::forward::plan;
pub mod replay;
pub mod signing;
pub mod stored;

pub use plan::{DestinationError, Plan, PlanError, RetryPolicy, check_destination_url};
