//! The Hookwarden receiver: the data-plane process behind every
//! `WebhookEndpoint` (`hookwarden-receiver serve`), and the forwarder behind
//! every `WebhookSubscription` (`hookwarden-receiver forward`, [`forward`]).
//!
//! It is assembled from its manifest in one place ([`app`]): it loads its
//! configuration ([`config`]) and secrets ([`secrets`]), reloads both when
//! their files change ([`reload`]), verifies deliveries ([`verify`]) and
//! stores them in JetStream ([`publish`], connected as [`nats_url`] says),
//! behind a small HTTP server ([`server`], requests read by [`request`]) on
//! a hardened listener ([`transport`]) that first filters by client
//! ([`clientip`], [`limits`]) and reads bodies within bounds ([`body`]);
//! refused requests may be kept for inspection ([`quarantine`]); providers'
//! published source ranges are fetched and checked in [`ranges`]. Every log
//! line is formatted as JSON ([`log_format`]), passes through a filter of
//! the secrets it knows ([`logging`], [`redact`]) and is written to stdout
//! in batches ([`log_writer`]); health, readiness ([`readiness`]) and
//! metrics ([`metrics`]) are on a port of their own ([`ops`]). Each concern
//! is its own module with small pure functions at the core, so the HTTP and
//! NATS edges stay thin.
//!
//! What the operator and the CLI share with it lives in `hookwarden-core`
//! (no HTTP server, no Kubernetes client) and is re-exported here under the
//! same paths: [`verify`], [`secrets`], [`redact`], [`publish`],
//! [`provider_headers`], [`nats_url`], [`ranges`], [`logging`],
//! [`log_format`], [`log_writer`], [`telemetry`], `forward::plan`,
//! `pool::layout` and `pool::routes`, and the target of the quarantine.
#![forbid(unsafe_code)]

pub mod app;
pub mod body;
pub mod clientip;
pub mod config;
pub mod forward;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod pool;
pub mod quarantine;
pub mod readiness;
pub mod reload;
pub mod request;
pub mod server;
pub mod transport;

// Shared with the operator and the CLI (hookwarden-core), re-exported under
// their old paths so `crate::verify::...` and `hookwarden_receiver::verify::...`
// keep working.
pub use hookwarden_core::trace_span;
pub use hookwarden_core::{
    log_format, log_writer, logging, nats_url, provider_headers, publish, ranges, redact, secrets,
    telemetry, verify,
};
