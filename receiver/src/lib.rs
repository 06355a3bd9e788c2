//! The Hookwarden receiver: the data-plane process behind every
//! `WebhookEndpoint`.
//!
//! It loads its configuration ([`config`]) and secrets ([`secrets`]),
//! verifies deliveries ([`verify`]) and stores them in JetStream
//! ([`publish`]), behind a small HTTP server ([`server`]) on a hardened listener
//! ([`transport`]). Each concern is its own module with small pure functions
//! at the core, so the HTTP and NATS edges stay thin.
#![forbid(unsafe_code)]

pub mod config;
pub mod publish;
pub mod secrets;
pub mod server;
pub mod transport;
pub mod verify;
