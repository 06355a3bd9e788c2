//! Request rate limits (`spec.rateLimit`): one bucket per client IP and one
//! for all clients together, both GCRA token buckets from `governor`.
//!
//! The per-IP bucket is checked first, so a flood from one source is stopped
//! by its own bucket and does not use up the global budget that the other
//! sources share. The per-IP table is bounded ([`MAX_TRACKED_IPS`]): a spray
//! of (possibly spoofed) source addresses must not grow memory without limit.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{NotUntil, Quota, RateLimiter};
use hookwarden_crds::{Rate, RateLimitSpec};

/// The per-client-IP rate when `spec.rateLimit` is absent: 100 requests/s
/// with a burst of 200. Far above what any provider sends one endpoint
/// (GitHub delivers events one by one, even for busy organisations, and
/// retries with backoff), yet it stops a single misbehaving or hostile
/// source from monopolising the receiver and the stream.
pub const DEFAULT_PER_SOURCE_IP: Rate = Rate {
    requests_per_second: 100,
    burst: Some(200),
};

/// The global rate when `spec.rateLimit` is absent: none. A global cap that
/// is too low turns a legitimate burst (a provider replaying a backlog)
/// into lost deliveries, and there is no value right for every endpoint;
/// the per-IP default already bounds any single source.
pub const DEFAULT_GLOBAL: Option<Rate> = None;

/// The most client IPs whose buckets are kept. A bucket is a few dozen
/// bytes, so this bounds the table to a few MiB. Beyond it (after dropping
/// buckets that are back to full), new IPs share one overflow bucket: they
/// are limited together rather than not at all, and memory stays bounded.
pub const MAX_TRACKED_IPS: usize = 100_000;

/// Every this many checks, buckets that are back to full are dropped, so
/// the table shrinks again after a burst of many sources. Amortised, that
/// is a few entries visited per request.
pub const RETAIN_EVERY: u64 = 10_000;

/// How often a full table may be swept for idle buckets on behalf of a new
/// IP. A sweep visits every entry, so sweeping for each new IP of a spray
/// would turn the memory bound into a CPU amplification; in between, new IPs
/// go straight to the overflow bucket.
pub const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A spec rate that cannot be a token bucket; names the field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: must be at least 1")]
pub struct RateError {
    /// The spec field, e.g. `spec.rateLimit.global.burst`.
    pub field: String,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client IP's own bucket (or the shared overflow bucket).
    PerSourceIp,
    /// The bucket of all clients together.
    Global,
}

impl Scope {
    /// A stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerSourceIp => "per_source_ip",
            Self::Global => "global",
        }
    }
}

/// A refused request: which limit, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The limit that refused the request.
    pub scope: Scope,
    /// Whole seconds until the request would pass, at least 1 (the value of
    /// `Retry-After`, which has no fractions; 0 would invite an instant retry).
    pub retry_after_secs: u64,
}

/// The key of the per-IP table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Ip(IpAddr),
    /// New IPs while the table is full.
    Overflow,
}

/// The per-IP table, shared between the limiter (which owns a store) and
/// [`RateLimits`] (which must see whether an IP is already tracked).
#[derive(Debug, Clone, Default)]
struct SharedStore(Arc<DashMapStateStore<Source>>);

impl StateStore for SharedStore {
    type Key = Source;

    fn measure_and_replace<T, F, E>(&self, key: &Source, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<Source> for SharedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Keyed<C> = RateLimiter<Source, SharedStore, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The rate limits of one endpoint.
pub struct RateLimits<C: Clock = DefaultClock> {
    per_ip: Option<PerIp<C>>,
    global: Option<Direct<C>>,
    clock: C,
}

struct PerIp<C: Clock> {
    limiter: Keyed<C>,
    store: SharedStore,
    capacity: usize,
    checks: AtomicU64,
    clock: C,
    start: C::Instant,
    /// When the full table was last swept, in nanoseconds since `start`
    /// (`u64::MAX`: never).
    last_full_sweep: AtomicU64,
    /// How many times the full table was swept (for tests and debugging).
    full_sweeps: AtomicU64,
}

impl<C: Clock> fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_ip", &self.per_ip.as_ref().map(|p| p.store.0.len()))
            .field("global", &self.global.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for RateLimits {
    /// The defaults that apply when `spec.rateLimit` is absent.
    fn default() -> Self {
        Self::with_clock(
            Some(quota(DEFAULT_PER_SOURCE_IP)),
            DEFAULT_GLOBAL.map(quota),
            MAX_TRACKED_IPS,
            DefaultClock::default(),
        )
    }
}

impl RateLimits {
    /// The limits of `spec.rateLimit`; absent, or a scope absent within it,
    /// means that scope's default ([`DEFAULT_PER_SOURCE_IP`], [`DEFAULT_GLOBAL`]).
    pub fn from_spec(spec: Option<&RateLimitSpec>) -> Result<Self, RateError> {
        let per_ip = spec
            .and_then(|s| s.per_source_ip)
            .unwrap_or(DEFAULT_PER_SOURCE_IP);
        let global = spec.and_then(|s| s.global).or(DEFAULT_GLOBAL);
        Ok(Self::with_clock(
            Some(checked_quota(per_ip, "spec.rateLimit.perSourceIp")?),
            global
                .map(|rate| checked_quota(rate, "spec.rateLimit.global"))
                .transpose()?,
            MAX_TRACKED_IPS,
            DefaultClock::default(),
        ))
    }

    /// No limits at all (for tests and benchmarks of the rest of the pipeline).
    pub fn unlimited() -> Self {
        Self::with_clock(None, None, MAX_TRACKED_IPS, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limits with explicit quotas, table capacity and clock.
    pub fn with_clock(
        per_ip: Option<Quota>,
        global: Option<Quota>,
        capacity: usize,
        clock: C,
    ) -> Self {
        let per_ip = per_ip.map(|quota| {
            let store = SharedStore::default();
            PerIp {
                limiter: RateLimiter::new(quota, store.clone(), clock.clone()),
                store,
                capacity,
                checks: AtomicU64::new(0),
                start: clock.now(),
                clock: clock.clone(),
                last_full_sweep: AtomicU64::new(u64::MAX),
                full_sweeps: AtomicU64::new(0),
            }
        });
        let global =
            global.map(|quota| RateLimiter::new(quota, InMemoryState::default(), clock.clone()));
        Self {
            per_ip,
            global,
            clock,
        }
    }

    /// Takes one request of `client` from its own bucket, then from the
    /// global one.
    pub fn check(&self, client: IpAddr) -> Result<(), Limited> {
        if let Some(per_ip) = &self.per_ip {
            let key = per_ip.key(client);
            per_ip
                .limiter
                .check_key(&key)
                .map_err(|not_until| self.limited(Scope::PerSourceIp, &not_until))?;
        }
        if let Some(global) = &self.global {
            global
                .check()
                .map_err(|not_until| self.limited(Scope::Global, &not_until))?;
        }
        Ok(())
    }

    /// How many per-IP buckets are kept (including the overflow bucket).
    pub fn tracked_ips(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |p| p.store.0.len())
    }

    /// How many times a full per-IP table was swept for a new IP.
    pub fn full_sweeps(&self) -> u64 {
        self.per_ip
            .as_ref()
            .map_or(0, |p| p.full_sweeps.load(Ordering::Relaxed))
    }

    /// Drops the per-IP buckets that are back to full (indistinguishable
    /// from a new bucket).
    pub fn retain_recent(&self) {
        if let Some(per_ip) = &self.per_ip {
            per_ip.limiter.retain_recent();
        }
    }

    fn limited(&self, scope: Scope, not_until: &NotUntil<C::Instant>) -> Limited {
        let wait = not_until.wait_time_from(self.clock.now());
        Limited {
            scope,
            retry_after_secs: retry_after_secs(wait),
        }
    }
}

impl<C: Clock> PerIp<C> {
    /// The bucket for `client`: its own if tracked or if there is room, else
    /// the shared overflow bucket. The room check races with concurrent new
    /// IPs, so the table may exceed the capacity by the number of requests
    /// checked at the same instant: still bounded.
    fn key(&self, client: IpAddr) -> Source {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let key = Source::Ip(client);
        if self.store.0.contains_key(&key) || self.store.0.len() < self.capacity {
            return key;
        }
        if self.may_sweep_full_table() {
            self.full_sweeps.fetch_add(1, Ordering::Relaxed);
            self.limiter.retain_recent();
            if self.store.0.len() < self.capacity {
                return key;
            }
        }
        Source::Overflow
    }

    /// Claims the next full-table sweep if [`FULL_SWEEP_INTERVAL`] has passed
    /// since the last one; only one of concurrent callers wins.
    fn may_sweep_full_table(&self) -> bool {
        let now = self.clock.now().duration_since(self.start).as_u64();
        let interval = u64::try_from(FULL_SWEEP_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_full_sweep.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= interval;
        due && self
            .last_full_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// `Retry-After` for a wait: whole seconds rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

fn checked_quota(rate: Rate, field: &str) -> Result<Quota, RateError> {
    let per_second = NonZeroU32::new(rate.requests_per_second).ok_or_else(|| RateError {
        field: format!("{field}.requestsPerSecond"),
    })?;
    let burst = match rate.burst {
        None => per_second,
        Some(burst) => NonZeroU32::new(burst).ok_or_else(|| RateError {
            field: format!("{field}.burst"),
        })?,
    };
    Ok(Quota::per_second(per_second).allow_burst(burst))
}

/// The quota of a rate known to be valid (the defaults); an invalid one
/// falls back to 1 request/s rather than panicking.
fn quota(rate: Rate) -> Quota {
    checked_quota(rate, "default").unwrap_or_else(|_| Quota::per_second(NonZeroU32::MIN))
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn rate(per_second: u32, burst: u32) -> Quota {
        checked_quota(
            Rate {
                requests_per_second: per_second,
                burst: Some(burst),
            },
            "test",
        )
        .expect("valid rate")
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn one_ip_flooding_is_limited_while_another_still_passes() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(Some(rate(1, 2)), None, 100, clock.clone());
        assert_eq!(limits.check(ip(1)), Ok(()));
        assert_eq!(limits.check(ip(1)), Ok(()));
        let limited = limits.check(ip(1)).expect_err("burst used up");
        assert_eq!(limited.scope, Scope::PerSourceIp);
        assert_eq!(limited.retry_after_secs, 1);
        assert_eq!(limits.check(ip(2)), Ok(()), "another IP has its own bucket");
        clock.advance(Duration::from_secs(1));
        assert_eq!(limits.check(ip(1)), Ok(()), "refilled after a second");
        assert!(limits.check(ip(1)).is_err());
    }

    #[test]
    fn the_global_limit_applies_across_ips() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(Some(rate(10, 10)), Some(rate(1, 3)), 100, clock);
        for n in 0..3 {
            assert_eq!(limits.check(ip(n)), Ok(()));
        }
        let limited = limits.check(ip(3)).expect_err("global budget used up");
        assert_eq!(limited.scope, Scope::Global);
        assert!(limited.retry_after_secs >= 1);
    }

    #[test]
    fn a_flood_from_one_ip_does_not_use_up_the_global_budget() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(Some(rate(1, 1)), Some(rate(1, 3)), 100, clock);
        assert_eq!(limits.check(ip(1)), Ok(()));
        for _ in 0..10 {
            let limited = limits.check(ip(1)).expect_err("per IP");
            assert_eq!(limited.scope, Scope::PerSourceIp);
        }
        assert_eq!(limits.check(ip(2)), Ok(()));
        assert_eq!(limits.check(ip(3)), Ok(()));
    }

    #[test]
    fn the_table_stays_within_its_cap_and_overflow_is_shared() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(Some(rate(1, 1)), None, 10, clock.clone());
        for n in 0..10 {
            assert_eq!(limits.check(ip(n)), Ok(()));
        }
        assert_eq!(limits.tracked_ips(), 10);
        // Full, and every bucket is in use: new IPs share the overflow bucket.
        assert_eq!(limits.check(ip(100)), Ok(()));
        assert!(limits.check(ip(101)).is_err(), "shares ip(100)'s bucket");
        for n in 200..1000 {
            let _ = limits.check(ip(n));
        }
        assert_eq!(limits.tracked_ips(), 11, "10 IPs and the overflow bucket");
        // A spray of new IPs does not sweep the whole table for each of them.
        assert_eq!(limits.full_sweeps(), 1);
        // Tracked IPs keep their own bucket.
        assert!(limits.check(ip(0)).is_err());
        // Once buckets are full again they are dropped and new IPs get their own.
        clock.advance(Duration::from_secs(5));
        assert_eq!(limits.check(ip(2000)), Ok(()));
        assert_eq!(limits.check(ip(2001)), Ok(()));
        assert!(limits.tracked_ips() <= 10, "{}", limits.tracked_ips());
        assert_eq!(limits.full_sweeps(), 2);
    }

    #[test]
    fn retain_recent_drops_idle_buckets() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(Some(rate(1, 1)), None, 100, clock.clone());
        for n in 0..50 {
            assert_eq!(limits.check(ip(n)), Ok(()));
        }
        assert_eq!(limits.tracked_ips(), 50);
        clock.advance(Duration::from_secs(10));
        limits.retain_recent();
        assert_eq!(limits.tracked_ips(), 0);
    }

    #[test]
    fn spec_rates_and_defaults() {
        let defaults = RateLimits::from_spec(None).expect("defaults");
        for _ in 0..200 {
            assert_eq!(defaults.check(ip(1)), Ok(()));
        }
        assert!(defaults.check(ip(1)).is_err(), "default burst is 200");

        let zero = RateLimitSpec {
            global: Some(Rate {
                requests_per_second: 0,
                burst: None,
            }),
            per_source_ip: None,
        };
        let err = RateLimits::from_spec(Some(&zero)).expect_err("0 req/s");
        assert_eq!(
            err.to_string(),
            "spec.rateLimit.global.requestsPerSecond: must be at least 1"
        );
        let zero_burst = RateLimitSpec {
            global: None,
            per_source_ip: Some(Rate {
                requests_per_second: 5,
                burst: Some(0),
            }),
        };
        let err = RateLimits::from_spec(Some(&zero_burst)).expect_err("burst 0");
        assert_eq!(
            err.to_string(),
            "spec.rateLimit.perSourceIp.burst: must be at least 1"
        );

        let unlimited = RateLimits::unlimited();
        for _ in 0..1000 {
            assert_eq!(unlimited.check(ip(1)), Ok(()));
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    }
}
