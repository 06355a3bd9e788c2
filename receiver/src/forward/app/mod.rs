//! `hookwarden-receiver forward`: the forwarder process, assembled from a
//! `WebhookSubscription` manifest in one place, like [`crate::app`] is for
//! `serve`.
//!
//! [`start`] checks everything before anything is read from JetStream —
//! the manifest and its plan, the signing secret, the CA, the filter, the
//! NATS connection — and opens the operations port. [`Forwarder::run`]
//! then binds the durable consumer (creating it and the dead-letter stream
//! from the [`Plan`](crate::forward::Plan) when missing), reads it until shutdown, rebinding
//! after anything that ends the read (the consumer deleted, NATS
//! restarted), and re-reads the signing secret and CA when their files
//! change.

mod bind;
mod event;
mod run;
mod start;

pub use self::start::{
    DEAD_LETTER_TIMEOUT, DEFAULT_NATS_URL, DRAIN_TIMEOUT, ForwardArgs, Forwarder, StartError,
    destination, load_plan, load_subscription, start,
};
