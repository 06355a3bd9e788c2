//! Reading a delivery's body: capped in size, paced in time, and paid for
//! from a shared memory budget.
//!
//! A body is the only part of a request whose size the client chooses, so
//! reading it is where a hostile client can hold the receiver's memory or
//! its attention. Three bounds apply, each aimed at one way of doing that:
//!
//! - **Size**: a declared `Content-Length` over the cap is refused before a
//!   byte is read; a chunked body is cut off as soon as it passes the cap.
//! - **Pace**: a body must start arriving within [`BodyPace::initial`] and
//!   then keep up [`BodyPace::min_rate`] bytes per second (each chunk buys
//!   the time its size is worth at that rate), and may never take longer than
//!   [`BodyPace::timeout`]. A client trickling a byte every few seconds is cut
//!   off in seconds, not minutes; a provider sending its body at once is
//!   never near any of it.
//! - **Memory**: every byte held is paid for from a budget shared by all
//!   requests ([`BodyBudget`]), as it arrives. A slow client holds only the
//!   bytes it actually sent, so a crowd of tricklers cannot take the room
//!   real deliveries need, and the receiver's memory for bodies is bounded
//!   whatever the number of connections.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a client may take to send its whole body. Providers send small
/// bodies at once; GitHub itself gives up after 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the body may take before its pace is checked at all: room for a
/// slow start (a TCP window to open, a proxy to start streaming).
pub const DEFAULT_BODY_INITIAL_WINDOW: Duration = Duration::from_secs(3);

/// The slowest pace a body may keep after [`DEFAULT_BODY_INITIAL_WINDOW`],
/// in bytes per second: 1 KiB/s, a thousandth of a slow link.
pub const DEFAULT_MIN_BODY_RATE: u32 = 1024;

/// Bytes of request bodies held at once by default: 64 MiB, a quarter of a
/// receiver pod's default memory limit (256 MiB).
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;

/// When a body must have arrived by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// The longest a body may take in all.
    pub timeout: Duration,
    /// The time a body has before its pace counts.
    pub initial: Duration,
    /// Bytes per second a body must keep up after `initial`; 0 turns the
    /// pace check off (only `timeout` applies).
    pub min_rate: u32,
}

impl Default for BodyPace {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_BODY_TIMEOUT,
            initial: DEFAULT_BODY_INITIAL_WINDOW,
            min_rate: DEFAULT_MIN_BODY_RATE,
        }
    }
}

impl BodyPace {
    /// The time `bytes` more bytes buy at the minimum rate.
    fn credit(&self, bytes: usize) -> Duration {
        if self.min_rate == 0 {
            return self.timeout;
        }
        let secs = bytes as f64 / f64::from(self.min_rate);
        Duration::try_from_secs_f64(secs).unwrap_or(self.timeout)
    }
}

/// The bytes of bodies all requests may hold at once; or, made by
/// [`BodyBudget::share`], one endpoint's share of a pool's budget.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    capacity: usize,
    /// The budget a share also draws from (the pool's, over all endpoints).
    whole: Option<Arc<Semaphore>>,
}

/// The bytes a body holds, from its budget and the whole it shares.
#[derive(Debug, Default)]
struct Held {
    own: Option<OwnedSemaphorePermit>,
    whole: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(capacity)),
            capacity,
            whole: None,
        }
    }

    /// A share of at most `capacity` bytes of this budget: a body read
    /// with it pays both, so one endpoint of a pool cannot hold more than
    /// its share, and all of them together no more than the whole.
    pub fn share(&self, capacity: usize) -> Self {
        Self {
            whole: Some(Arc::clone(&self.bytes)),
            ..Self::new(capacity.min(self.capacity))
        }
    }

    /// The bytes this budget holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by bodies right now.
    pub fn held(&self) -> usize {
        self.capacity.saturating_sub(self.bytes.available_permits())
    }

    /// Takes `bytes` more for the body holding `held`.
    fn take(&self, held: &mut Held, bytes: usize) -> bool {
        let Ok(count) = u32::try_from(bytes) else {
            return false;
        };
        if count == 0 {
            return true;
        }
        let Ok(own) = Arc::clone(&self.bytes).try_acquire_many_owned(count) else {
            return false;
        };
        let whole = match &self.whole {
            Some(whole) => match Arc::clone(whole).try_acquire_many_owned(count) {
                Ok(permit) => Some(permit),
                // The share's bytes go back with `own`.
                Err(_) => return false,
            },
            None => None,
        };
        merge(&mut held.own, own);
        if let Some(whole) = whole {
            merge(&mut held.whole, whole);
        }
        true
    }
}

fn merge(held: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match held {
        Some(existing) => existing.merge(permit),
        None => *held = Some(permit),
    }
}

/// A body read in full, with the budget it holds until dropped.
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes as received.
    pub bytes: Bytes,
    _budget: Held,
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Over the endpoint's cap (declared or as sent).
    #[error("body_too_large")]
    TooLarge,
    /// Not complete in time, or too slow.
    #[error("body_timeout")]
    TimedOut,
    /// The connection broke, or the framing is invalid.
    #[error("body_unreadable")]
    Unreadable,
    /// The bytes of bodies already held fill the budget.
    #[error("overloaded")]
    OverBudget,
}

/// Whether the request declares a `Content-Length` over `limit`: refused
/// without reading a byte.
pub fn declared_over(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX))
}

/// Reads the whole body within `limit` bytes and `pace`, paying for it from
/// `budget` as it arrives.
pub async fn read(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    pace: &BodyPace,
    budget: &BodyBudget,
) -> Result<ReadBody, BodyError> {
    if declared_over(headers, limit) {
        return Err(BodyError::TooLarge);
    }
    let start = Instant::now();
    let hard_deadline = start + pace.timeout;
    let mut deadline = (start + pace.initial).min(hard_deadline);
    // Not the declared size: a client may declare the cap and send nothing.
    let mut buffer = BytesMut::new();
    let mut held = Held::default();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_elapsed) => return Err(BodyError::TimedOut),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing a verifier reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len().saturating_add(data.len()) > limit {
            return Err(BodyError::TooLarge);
        }
        if !budget.take(&mut held, data.len()) {
            return Err(BodyError::OverBudget);
        }
        buffer.extend_from_slice(&data);
        deadline = (deadline + pace.credit(data.len())).min(hard_deadline);
    }
    Ok(ReadBody {
        bytes: buffer.freeze(),
        _budget: held,
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::http::HeaderValue;
    use futures::StreamExt;

    use super::*;

    fn declared(len: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers
    }

    fn chunked(chunks: usize, size: usize) -> Body {
        Body::from_stream(futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, Infallible>(vec![b'x'; size])),
        ))
    }

    /// One byte every `every`, `count` times.
    fn trickle(count: usize, every: Duration) -> Body {
        Body::from_stream(
            futures::stream::iter(0..count)
                .then(move |_| async move {
                    tokio::time::sleep(every).await;
                    Ok::<_, Infallible>(vec![b'x'])
                })
                .boxed(),
        )
    }

    fn budget() -> BodyBudget {
        BodyBudget::new(1 << 20)
    }

    #[tokio::test]
    async fn reads_a_body_up_to_the_cap() {
        let pace = BodyPace::default();
        let body = read(&declared(8), Body::from("12345678"), 8, &pace, &budget())
            .await
            .expect("at the cap");
        assert_eq!(body.bytes.as_ref(), b"12345678");
        let body = read(&HeaderMap::new(), chunked(4, 2), 8, &pace, &budget())
            .await
            .expect("chunked, at the cap");
        assert_eq!(body.bytes.len(), 8);
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_cap_without_reading() {
        let outcome = read(
            &declared(9),
            Body::empty(),
            8,
            &BodyPace::default(),
            &budget(),
        )
        .await;
        assert_eq!(outcome.err(), Some(BodyError::TooLarge));
    }

    #[tokio::test]
    async fn cuts_off_a_chunked_body_over_the_cap() {
        let outcome = read(
            &HeaderMap::new(),
            chunked(5, 2),
            8,
            &BodyPace::default(),
            &budget(),
        )
        .await;
        assert_eq!(outcome.err(), Some(BodyError::TooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_on_a_body_that_never_starts() {
        let stalled = Body::from_stream(futures::stream::pending::<Result<Vec<u8>, Infallible>>());
        let started = Instant::now();
        let outcome = read(
            &HeaderMap::new(),
            stalled,
            8,
            &BodyPace::default(),
            &budget(),
        )
        .await;
        assert_eq!(outcome.err(), Some(BodyError::TimedOut));
        assert_eq!(
            started.elapsed(),
            DEFAULT_BODY_INITIAL_WINDOW,
            "the initial window, not the whole timeout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_minimum_rate_is_cut_off_after_the_initial_window() {
        let started = Instant::now();
        let outcome = read(
            &declared(100),
            trickle(100, Duration::from_secs(1)),
            100,
            &BodyPace::default(),
            &budget(),
        )
        .await;
        assert_eq!(outcome.err(), Some(BodyError::TimedOut));
        assert!(
            started.elapsed() < DEFAULT_BODY_INITIAL_WINDOW + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_keeping_the_minimum_rate_may_take_up_to_the_timeout() {
        // 2 KiB/s for 5 s: past the initial window, within the timeout.
        let pace = BodyPace::default();
        let body = Body::from_stream(
            futures::stream::iter(0..10)
                .then(|_| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok::<_, Infallible>(vec![b'x'; 1024])
                })
                .boxed(),
        );
        let kept = read(&HeaderMap::new(), body, 1 << 20, &pace, &budget())
            .await
            .expect("kept the pace");
        assert_eq!(kept.bytes.len(), 10 * 1024);
        // The same pace for longer than the timeout is cut off.
        let body = Body::from_stream(
            futures::stream::iter(0..100)
                .then(|_| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok::<_, Infallible>(vec![b'x'; 1024])
                })
                .boxed(),
        );
        let started = Instant::now();
        let outcome = read(&HeaderMap::new(), body, 1 << 20, &pace, &budget()).await;
        assert_eq!(outcome.err(), Some(BodyError::TimedOut));
        assert_eq!(started.elapsed(), DEFAULT_BODY_TIMEOUT);
    }

    #[tokio::test]
    async fn bodies_pay_for_what_they_hold_and_give_it_back() {
        let budget = BodyBudget::new(10);
        let pace = BodyPace::default();
        let first = read(&HeaderMap::new(), chunked(3, 2), 100, &pace, &budget)
            .await
            .expect("6 of 10 bytes");
        assert_eq!(budget.held(), 6);
        let over = read(&HeaderMap::new(), chunked(3, 2), 100, &pace, &budget).await;
        assert_eq!(over.err(), Some(BodyError::OverBudget), "6 + 6 > 10");
        assert_eq!(budget.held(), 6, "a refused body gives back what it took");
        drop(first);
        assert_eq!(budget.held(), 0);
        let again = read(&HeaderMap::new(), chunked(5, 2), 100, &pace, &budget)
            .await
            .expect("room again");
        assert_eq!(again.bytes.len(), 10);
    }

    #[tokio::test]
    async fn a_share_holds_its_own_bytes_and_the_whole_ones() {
        let whole = BodyBudget::new(10);
        let (a, b) = (whole.share(6), whole.share(6));
        let pace = BodyPace::default();
        let first = read(&HeaderMap::new(), chunked(3, 2), 100, &pace, &a)
            .await
            .expect("6 of a's 6");
        assert_eq!((a.held(), whole.held()), (6, 6));
        let over_share = read(&HeaderMap::new(), chunked(1, 2), 100, &pace, &a).await;
        assert_eq!(
            over_share.err(),
            Some(BodyError::OverBudget),
            "a's share is full"
        );
        let from_b = read(&HeaderMap::new(), chunked(2, 2), 100, &pace, &b)
            .await
            .expect("b still has room");
        assert_eq!(whole.held(), 10);
        let over_whole = read(&HeaderMap::new(), chunked(1, 2), 100, &pace, &b).await;
        assert_eq!(
            over_whole.err(),
            Some(BodyError::OverBudget),
            "the whole is full"
        );
        assert_eq!(
            (b.held(), whole.held()),
            (4, 10),
            "a refusal gives both back"
        );
        drop((first, from_b));
        assert_eq!((a.held(), b.held(), whole.held()), (0, 0, 0));
        assert_eq!(whole.share(100).capacity(), 10, "no share above the whole");
    }
}
