//! The Hookwarden API (group `hookwarden.dev`, version `v1alpha1`):
//! `WebhookEndpoint` (receive, verify, store), `WebhookSubscription`
//! (deliver what was stored to an HTTP service) and `WebhookReceiverPool`
//! (receiver pods shared by many endpoints).
//!
//! One spec type serves both runtimes: the operator reconciles it in a
//! cluster as a custom resource (`WebhookEndpoint`, feature `kube`), and the
//! receiver (or the forwarder) reads the very same manifest from a file as a
//! [`Manifest`] (`EndpointManifest`), without kube. The CRD YAML in
//! `crds/*.yaml` is generated from these types by the `crdgen` binary; a test
//! fails when the two drift.
//!
//! Without the `kube` feature, the derives and CEL rules (`x_kube`) of the
//! custom resources are left out (`cfg_attr`) and the spec types derive
//! plain `JsonSchema`: the receiver's build compiles the same spec types,
//! and `tests/tools/deps-check.sh` builds it so that side cannot rot.
#![forbid(unsafe_code)]

mod manifest;
mod pool;
mod stored_headers;
mod subscription;
mod v1alpha1;

pub use manifest::{
    API_VERSION, EndpointManifest, Manifest, ManifestError, ManifestSpec, SubscriptionManifest,
    from_yaml, subscription_from_yaml,
};
pub use pool::*;
pub use stored_headers::*;
pub use subscription::*;
pub use v1alpha1::*;

#[cfg(feature = "kube")]
mod crd;
#[cfg(feature = "kube")]
pub use crd::*;
