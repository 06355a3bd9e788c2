//! Waiting for a real system to reach a state, with a deadline: controllers,
//! kwok and servers converge in their own time, and tests must neither sleep
//! a fixed time nor wait forever.

use std::time::Duration;

/// Polls `check` every 200 ms until it returns `Some`, and returns that
/// value; panics with `what` once `timeout` has passed.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
