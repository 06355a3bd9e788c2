//! The Hookwarden operator: the control plane that turns `WebhookEndpoint`
//! resources into running receivers.
//!
//! So far it installs and upgrades its CRD ([`crd`]); reconciliation of
//! endpoints into Deployments, Services, Ingress, certificates, Secrets and
//! streams follows in `reconcile/` and `resources/`.
#![forbid(unsafe_code)]

pub mod crd;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "hookwarden-operator";
