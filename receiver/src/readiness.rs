//! Whether this process can take deliveries now ([`Readiness`]): set by
//! whatever loads the configuration, watches NATS and checks the stream or
//! the consumer, and read by the operations port's `/readyz`
//! ([`crate::ops`]). Its own module, below both, so the code that reloads a
//! configuration does not depend on the HTTP port that reports it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;

/// What `/readyz` reports: ready only when the configuration is loaded (with
/// its secrets), NATS is connected and the endpoint's stream exists, so a
/// load balancer sends deliveries only to a replica that can store them.
///
/// A configuration on disk that could not be loaded (a broken rotation, or
/// NATS away while it was tried) is *reported* but does not make the
/// replica unready: it still serves the previous configuration, and failing
/// readiness on every replica at once for one bad Secret would turn a
/// rotation mistake into an outage. The metric `hookwarden_config_stale`
/// and `/readyz`'s text say it.
#[derive(Debug, Clone)]
pub struct Readiness {
    config_loaded: Arc<AtomicBool>,
    nats: Option<async_nats::Client>,
    /// Why the served configuration is not the one on disk.
    stale: Arc<std::sync::Mutex<Option<String>>>,
    /// Why the endpoint's stream cannot take deliveries.
    stream: Arc<std::sync::Mutex<Option<String>>>,
    /// Why the forwarder's consumer cannot be read.
    consumer: Arc<std::sync::Mutex<Option<String>>>,
}

impl Readiness {
    /// Not ready until [`Readiness::set_config_loaded`] and a connected client.
    pub fn new(nats: Option<async_nats::Client>) -> Self {
        Self {
            config_loaded: Arc::new(AtomicBool::new(false)),
            nats,
            stale: Arc::default(),
            stream: Arc::default(),
            consumer: Arc::default(),
        }
    }

    /// Marks the configuration (manifest and secrets) as loaded or not.
    pub fn set_config_loaded(&self, loaded: bool) {
        self.config_loaded.store(loaded, Ordering::Release);
    }

    /// Records why the configuration on disk is not served (`None`: it is).
    pub fn set_config_stale(&self, reason: Option<String>) {
        *lock(&self.stale) = reason;
    }

    /// Records why the stream cannot take deliveries (`None`: it can).
    pub fn set_stream_problem(&self, problem: Option<String>) {
        *lock(&self.stream) = problem;
    }

    /// Records why the forwarder's consumer cannot be read (`None`: it
    /// can).
    pub fn set_consumer_problem(&self, problem: Option<String>) {
        *lock(&self.consumer) = problem;
    }

    /// Why the served configuration is not the one on disk, if it is not.
    pub fn config_stale(&self) -> Option<String> {
        lock(&self.stale).clone()
    }

    /// Why the receiver is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.config_loaded.load(Ordering::Acquire) {
            return Some("config_not_loaded");
        }
        match &self.nats {
            Some(client)
                if client.connection_state() == async_nats::connection::State::Connected => {}
            _ => return Some("nats_disconnected"),
        }
        if lock(&self.stream).is_some() {
            return Some("stream_missing");
        }
        if lock(&self.consumer).is_some() {
            return Some("consumer_unavailable");
        }
        None
    }

    /// The `/readyz` answer: status and text.
    pub(crate) fn answer(&self) -> (StatusCode, String) {
        match self.not_ready_reason() {
            None => match self.config_stale() {
                None => (StatusCode::OK, "ready\n".to_owned()),
                Some(stale) => (
                    StatusCode::OK,
                    format!("ready; config_stale: serving the previous configuration: {stale}\n"),
                ),
            },
            Some("stream_missing") => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: stream_missing: {}\n",
                    lock(&self.stream).clone().unwrap_or_default()
                ),
            ),
            Some("consumer_unavailable") => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: consumer_unavailable: {}\n",
                    lock(&self.consumer).clone().unwrap_or_default()
                ),
            ),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
