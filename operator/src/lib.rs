//! The Hookwarden operator: the control plane that turns `WebhookEndpoint`
//! resources into running receivers and `WebhookSubscription` resources
//! into running forwarders.
//!
//! It installs and upgrades its CRDs ([`crd`]) and reconciles
//! ([`reconcile`]): each endpoint into a rendered configuration Secret, a
//! hardened receiver Deployment and a Service, and, as its spec asks, an
//! Ingress with a cert-manager Certificate, a NetworkPolicy, a
//! PodDisruptionBudget and a HorizontalPodAutoscaler, all built by the pure
//! functions of [`resources`]; its JetStream stream on NATS, checked for
//! drift; each subscription into its durable consumer, dead-letter stream
//! and forwarder Deployment. Providers' published source ranges are fetched
//! once per list and kept in a ConfigMap ([`ranges`]); several replicas
//! elect one leader on a Lease ([`leader`]). Its health, readiness and
//! metrics are served by [`ops`].
//!
//! What it shares with the receiver (stream naming and management, the
//! verifiers and signers it validates and signs with, secrets, source
//! ranges, logging) comes from `hookwarden-core`; it does not link the
//! receiver or any web framework (`tests/tools/deps-check.sh`).
#![forbid(unsafe_code)]

pub mod app;
pub mod crd;
pub mod leader;
pub mod ops;
pub mod ranges;
pub mod reconcile;
pub mod resources;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "hookwarden-operator";
