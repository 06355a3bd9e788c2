//! The controller: each `WebhookEndpoint` is validated, its referenced
//! Secrets are resolved, its children are built ([`crate::resources`]) and
//! server-side applied, and its status is written. An endpoint served by a
//! `WebhookReceiverPool` has no receivers of its own: [`pool`] renders it
//! into its pool's configuration, and its own pass keeps the stream, the
//! Ingress and the status ([`pool_member::reconcile_member`]).
//!
//! Every step has its own error type, so a failure says which step failed;
//! a problem the user must fix becomes a condition (and waits), a transient
//! one is retried with a delay.
//!
//! One concern a file: the pass (`endpoint`), what passes share (`context`,
//! `error`, `runner`), the wiring of the controllers (`controller`), apply
//! and prune (`apply`), the certificate step (`certificate`) and status
//! reporting (`report`, of what `status` computes).

// Before the modules: `macro_rules!` is visible only below its definition.
/// A named step of a reconcile pass: a span exported with traces (a child
/// of the pass's `hookwarden.reconcile`), never in the log lines; a
/// disabled callsite when traces are off.
macro_rules! step {
    ($name:literal) => {
        tracing::info_span!(target: hookwarden_core::telemetry::TARGET, $name)
    };
}

mod apply;
pub mod audit;
mod certificate;
pub mod consumer;
mod context;
mod controller;
mod endpoint;
mod error;
pub mod pool;
mod pool_context;
mod pool_controller;
mod pool_member;
mod pool_status;
mod report;
mod runner;
pub mod secrets;
pub mod status;
pub mod stream;
pub mod subscription;
mod subscription_children;
mod subscription_context;
pub mod subscription_status;
pub mod triggers;
mod watches;

pub use context::{Config, DEFAULT_STREAM_CHECK_INTERVAL};
pub use controller::{run, run_with_ops};
pub use error::{ApplyError, ReconcileError, StatusError};
pub use subscription::DEFAULT_SUBSCRIPTION_STATUS_INTERVAL;

// What the passes of endpoints, pools and subscriptions share, by the names
// they had when this was one file.
use apply::{Owned, api, apply};
use certificate::reconcile_certificate;
use context::Context;
use report::{build_failed, observe_receiver, write_status, write_status_with};
use runner::{MISSING_SECRET_RETRY, STREAM_RETRY};
use status::Exposure;
use triggers::referencing;
