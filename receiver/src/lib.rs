//! The Hookwarden receiver: the data-plane process behind every
//! `WebhookEndpoint`.
//!
//! It loads its configuration ([`config`]) and secrets ([`secrets`]), and
//! verifies deliveries ([`verify`]). Each concern is its own module with
//! pure functions at the core, so the HTTP and NATS edges stay thin.
#![forbid(unsafe_code)]

pub mod config;
pub mod secrets;
pub mod verify;
