//! Polling the files and swapping in each version that loads.

use std::time::Duration;

use crate::config;
use crate::server::AppState;

use super::build::{Sources, load, log_source_restriction};
use super::fingerprint::fingerprint_with;

/// How often the files are checked for changes by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The longest wait between two attempts to load a configuration that
/// failed: a broken file is retried (and reported) at most once a minute.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// A version of the files that could not be loaded, and when to try again.
#[derive(Debug)]
struct Failed {
    fingerprint: [u8; 32],
    attempts: u32,
    retry_at: Option<tokio::time::Instant>,
}

/// The wait after the `attempts`-th failure of one version: the poll
/// interval doubled each time, at most [`MAX_RETRY_INTERVAL`].
pub fn retry_delay(interval: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    interval.saturating_mul(factor).min(MAX_RETRY_INTERVAL)
}

/// Polls the files every `interval` until `shutdown`, and swaps a rebuilt
/// pipeline into `state` whenever they changed and the new version loads.
///
/// A version is marked applied only once it loaded. One that fails is
/// tried again when the files change; when the failure can pass on its own
/// (NATS unreachable while a changed stream is set up:
/// [`LoadError::is_retryable`]) it is also retried with backoff
/// ([`retry_delay`]). Meanwhile the previous version keeps serving, and
/// `readiness` (`/readyz`'s text) and the `hookwarden_config_stale` metric
/// say why.
///
/// [`LoadError::is_retryable`]: super::error::LoadError::is_retryable
pub async fn watch(
    sources: Sources,
    state: AppState,
    interval: Duration,
    readiness: crate::readiness::Readiness,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let fingerprint = |sources: &Sources| {
        fingerprint_with(
            &sources.endpoint,
            &sources.secrets_dir,
            sources.ranges.as_deref(),
        )
    };
    let mut applied = fingerprint(&sources);
    // The version that failed, and when to try it again (`None`: only once
    // the files change).
    let mut current_limits = config::load_endpoint(&sources.endpoint)
        .ok()
        .map(|e| e.spec.rate_limit);
    let mut failed: Option<Failed> = None;
    let metrics = std::sync::Arc::clone(state.metrics());
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let seen = fingerprint(&sources);
        if seen == applied {
            if failed.take().is_some() {
                // The files went back to the version being served.
                readiness.set_config_stale(None);
                metrics.config_stale.set(0);
                tracing::info!("configuration files are back to the served version");
            }
            continue;
        }
        let attempts = match &failed {
            Some(f) if f.fingerprint == seen => match f.retry_at {
                Some(at) if tokio::time::Instant::now() >= at => f.attempts + 1,
                _ => continue,
            },
            _ => 1,
        };
        let served = state.target();
        match load(&sources, Some(&served)).await {
            Ok((endpoint, mut pipeline)) => {
                if current_limits.as_ref() == Some(&endpoint.spec.rate_limit) {
                    // Unchanged limits keep their buckets.
                    pipeline.limits = None;
                }
                current_limits = Some(endpoint.spec.rate_limit.clone());
                log_source_restriction(&endpoint, &pipeline);
                state.replace(pipeline);
                applied = seen;
                failed = None;
                readiness.set_config_stale(None);
                metrics.config_stale.set(0);
                metrics.record_reload("applied");
                tracing::info!(
                    endpoint = state.endpoint().as_str(),
                    attempts,
                    "configuration reloaded"
                );
            }
            Err(err) => {
                let delay = err.is_retryable().then(|| retry_delay(interval, attempts));
                readiness.set_config_stale(Some(err.to_string()));
                metrics.config_stale.set(1);
                metrics.record_reload("failed");
                tracing::error!(
                    error = %err,
                    attempts,
                    retry_in_secs = delay.map(|d| d.as_secs_f64()),
                    "configuration changed but cannot be loaded; still serving the previous one"
                );
                failed = Some(Failed {
                    fingerprint: seen,
                    attempts,
                    retry_at: delay.map(|delay| tokio::time::Instant::now() + delay),
                });
            }
        }
    }
}
