//! The Hookwarden receiver: the data-plane process behind every
//! `WebhookEndpoint`.
//!
//! So far it loads and checks its configuration ([`config`]); the HTTPS
//! pipeline (client IP, allowlist, rate limits, verification, audit log,
//! JetStream publish) is built on top of it.
#![forbid(unsafe_code)]

pub mod config;
