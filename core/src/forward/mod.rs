//! The part of the forwarder the operator shares: [`plan`] resolves a
//! subscription into everything the forwarder and the operator must agree
//! on (stream, filters, durable consumer, dead-letter stream, retry
//! policy, destination). The forwarder itself is the receiver's
//! `forward` module.

pub mod plan;

pub use plan::{DestinationError, Plan, PlanError, RetryPolicy, check_destination_url};
