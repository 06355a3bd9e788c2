//! What the Hookwarden receiver, operator and CLI share, with no HTTP
//! server and no Kubernetes client in its dependency tree (the operator
//! links this crate, not the receiver; `tests/tools/deps-check.sh` keeps
//! it so).
//!
//! The verifiers and signers of every provider ([`verify`]) and the
//! secrets they read ([`secrets`]); an endpoint's stream, subjects and
//! their management in JetStream ([`publish`], its quarantine stream in
//! [`quarantine`], the headers it stores in [`provider_headers`], the
//! tokens of their subjects in [`subject_token`]), reached as [`nats_url`]
//! says; a subscription's plan ([`forward`]); providers' published source
//! ranges ([`ranges`]); the layout of a pool's Secret and its routes
//! ([`pool`]); and the logging every process shares: JSON lines
//! ([`log_format`]) filtered of every known secret ([`logging`],
//! [`redact`]), written in batches ([`log_writer`]), with traces
//! ([`telemetry`], which installs the subscriber of both). The client TLS
//! of keys, ranges, traces and the receiver's deliveries is [`tls`].
#![forbid(unsafe_code)]

pub mod forward;
pub mod log_format;
pub mod log_writer;
pub mod logging;
pub mod nats_url;
pub mod pool;
pub mod provider_headers;
pub mod publish;
pub mod quarantine;
pub mod ranges;
pub mod redact;
pub mod secrets;
pub mod subject_token;
pub mod telemetry;
pub mod tls;
pub mod verify;
