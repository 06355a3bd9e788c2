//! The Hookwarden receiver: the data-plane process behind every
//! `WebhookEndpoint`.
//!
//! It is assembled from its manifest in one place ([`app`]): it loads its
//! configuration ([`config`]) and secrets ([`secrets`]), verifies
//! deliveries ([`verify`]) and stores them in JetStream ([`publish`]),
//! behind a small HTTP server ([`server`]) on a hardened listener
//! ([`transport`]) that first filters by client ([`clientip`], [`limits`])
//! and reads bodies within bounds ([`body`]); providers' published source
//! ranges are fetched and checked in [`ranges`]. Each concern is its own module with small pure functions
//! at the core, so the HTTP and NATS edges stay thin.
#![forbid(unsafe_code)]

pub mod app;
pub mod body;
pub mod clientip;
pub mod config;
pub mod forward;
pub mod limits;
pub mod logging;
pub mod nats_url;
pub mod ops;
pub mod provider_headers;
pub mod publish;
pub mod quarantine;
pub mod ranges;
pub mod redact;
pub mod reload;
pub mod request;
pub mod secrets;
pub mod server;
pub mod transport;
pub mod verify;
