//! The Hookwarden operator: the control plane that turns `WebhookEndpoint`
//! resources into running receivers.
//!
//! It installs and upgrades its CRD ([`crd`]) and reconciles each endpoint
//! ([`reconcile`]) into a rendered configuration Secret, a hardened receiver
//! Deployment and a Service, built by the pure functions of [`resources`].
//! Its health, readiness and reconcile metrics are served by [`ops`].
#![forbid(unsafe_code)]

pub mod crd;
pub mod leader;
pub mod ops;
pub mod ranges;
pub mod reconcile;
pub mod resources;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "hookwarden-operator";
