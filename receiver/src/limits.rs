//! Request rate limits (`spec.rateLimit`): one bucket per client source and
//! one for all clients together, both GCRA token buckets from `governor`;
//! and [`PerSourceSlots`], the bound on what one source may hold at once
//! (connections, body reads); and [`pool_share`], what one endpoint of a
//! pool may take of a bound the pool's endpoints share (publishes in flight,
//! buffered bodies, quarantine records).
//!
//! A source is a client IPv4 address, or the IPv6 prefix (a /64 by default)
//! around a client IPv6 address: one IPv6 host usually owns a whole /64, so
//! keying by /128 would give it 2^64 buckets.
//!
//! The per-source bucket is checked before the body is read, so a flood from
//! one source is stopped by its own bucket. The global bucket is checked
//! only for verified deliveries ([`RateLimits::check_global`]): forged
//! requests, however many sources send them, cannot use up the budget that
//! real deliveries share. The per-source table is bounded
//! ([`MAX_TRACKED_IPS`]): a spray of source addresses must not grow memory
//! without limit.

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

/// The global rate of verified deliveries when `spec.rateLimit.global` is
/// absent, per replica: 2,000/s with a burst of 4,000. It bounds what a
/// compromised or runaway sender (one with a valid secret) can push into
/// the stream and onto its consumers, far above what a provider sends one
/// endpoint (a backlog replay included) and about a tenth of what one
/// receiver can store. Only verified deliveries count, so forgeries cannot
/// use it up; raise it for high-volume endpoints.
pub const DEFAULT_GLOBAL: Option<Rate> = Some(Rate {
    requests_per_second: 2_000,
    burst: Some(4_000),
});

/// The IPv6 prefix length a source is keyed by when
/// `spec.rateLimit.ipv6PrefixLength` is absent: a /64, what one site or host
/// is usually given.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// One endpoint's share of a pool-wide bound by default: a quarter of it,
/// at least 1, so a flooded or stalled endpoint leaves three quarters to
/// the others.
pub fn pool_share(whole: usize) -> usize {
    (whole / 4).max(1)
}

/// The source a client address is counted as: an IPv4 address (IPv4-mapped
/// IPv6 included) as it is, an IPv6 address truncated to `ipv6_prefix` bits.
pub fn source_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

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
#[error("{field}: {expected}")]
pub struct RateError {
    /// The spec field, e.g. `spec.rateLimit.global.burst`.
    pub field: String,
    /// What the field must be.
    pub expected: &'static str,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client IP's own bucket (or the shared overflow bucket).
    PerSourceIp,
    /// The bucket of all verified deliveries together.
    Global,
    /// The source already has as many requests in progress as it may.
    ConcurrentPerSource,
}

impl Scope {
    /// A stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerSourceIp => "per_source_ip",
            Self::Global => "global",
            Self::ConcurrentPerSource => "concurrent_per_source",
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
    ipv6_prefix: u8,
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
        let ipv6_prefix = spec
            .and_then(|s| s.ipv6_prefix_length)
            .unwrap_or(DEFAULT_IPV6_PREFIX);
        if !(16..=128).contains(&ipv6_prefix) {
            return Err(RateError {
                field: "spec.rateLimit.ipv6PrefixLength".to_owned(),
                expected: "must be between 16 and 128",
            });
        }
        Ok(Self::with_clock(
            Some(checked_quota(per_ip, "spec.rateLimit.perSourceIp")?),
            global
                .map(|rate| checked_quota(rate, "spec.rateLimit.global"))
                .transpose()?,
            MAX_TRACKED_IPS,
            DefaultClock::default(),
        )
        .with_ipv6_prefix(ipv6_prefix))
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
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// Keys IPv6 clients by their `prefix`-bit network (default /64).
    #[must_use]
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.min(128);
        self
    }

    /// The IPv6 prefix length sources are keyed by.
    pub fn ipv6_prefix(&self) -> u8 {
        self.ipv6_prefix
    }

    /// Takes one request of `client` from its source's bucket, then from the
    /// global one: [`RateLimits::check_source`] and
    /// [`RateLimits::check_global`] at once.
    pub fn check(&self, client: IpAddr) -> Result<(), Limited> {
        self.check_source(client)?;
        self.check_global()
    }

    /// Takes one request of `client` from its source's own bucket; checked
    /// before the body is read.
    pub fn check_source(&self, client: IpAddr) -> Result<(), Limited> {
        if let Some(per_ip) = &self.per_ip {
            let key = per_ip.key(source_key(client, self.ipv6_prefix));
            per_ip
                .limiter
                .check_key(&key)
                .map_err(|not_until| self.limited(Scope::PerSourceIp, &not_until))?;
        }
        Ok(())
    }

    /// Takes one delivery from the bucket all sources share; checked once a
    /// delivery is verified, so forgeries never use it up.
    pub fn check_global(&self) -> Result<(), Limited> {
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

/// A bound on how many of something (connections, body reads) one source
/// may hold at once, so a single address cannot take a shared pool. The
/// table only holds sources with at least one slot taken, so it is bounded
/// by whatever bounds the slots themselves (the connection cap).
#[derive(Debug)]
pub struct PerSourceSlots {
    cap: usize,
    ipv6_prefix: u8,
    taken: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// A slot of [`PerSourceSlots`]; given back when dropped.
#[derive(Debug)]
pub struct SourceSlot {
    slots: Arc<PerSourceSlots>,
    key: IpAddr,
}

impl PerSourceSlots {
    /// At most `cap` slots per source (at least 1), IPv6 sources keyed by
    /// their `ipv6_prefix`-bit network.
    pub fn new(cap: usize, ipv6_prefix: u8) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            ipv6_prefix,
            taken: std::sync::Mutex::default(),
        })
    }

    /// A slot for `client`, unless its source already holds `cap`.
    pub fn try_take(self: &Arc<Self>, client: IpAddr) -> Option<SourceSlot> {
        let key = source_key(client, self.ipv6_prefix);
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = taken.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            slots: Arc::clone(self),
            key,
        })
    }

    /// How many slots `client`'s source holds now.
    pub fn held(&self, client: IpAddr) -> usize {
        let key = source_key(client, self.ipv6_prefix);
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// How many sources hold a slot now.
    pub fn sources(&self) -> usize {
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut taken = self
            .slots
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = taken.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&self.key);
            }
        }
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
        expected: "must be at least 1",
    })?;
    let burst = match rate.burst {
        None => per_second,
        Some(burst) => NonZeroU32::new(burst).ok_or_else(|| RateError {
            field: format!("{field}.burst"),
            expected: "must be at least 1",
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
            ..RateLimitSpec::default()
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
            ..RateLimitSpec::default()
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
    fn ipv6_sources_are_keyed_by_their_prefix() {
        let v6 = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            source_key(v6("2001:db8:1:2:aaaa::1"), 64),
            v6("2001:db8:1:2::")
        );
        assert_eq!(
            source_key(v6("2001:db8:1:2:aaaa::1"), 128),
            v6("2001:db8:1:2:aaaa::1")
        );
        assert_eq!(
            source_key(v6("2001:db8:1:2:aaaa::1"), 48),
            v6("2001:db8:1::")
        );
        assert_eq!(
            source_key(v6("::ffff:10.1.2.3"), 64),
            v6("10.1.2.3"),
            "IPv4-mapped"
        );
        assert_eq!(source_key(v6("10.1.2.3"), 64), v6("10.1.2.3"));

        // A host spraying addresses inside its /64 shares one bucket.
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(Some(rate(1, 2)), None, 100, clock);
        assert_eq!(limits.check_source(v6("2001:db8::1")), Ok(()));
        assert_eq!(limits.check_source(v6("2001:db8::ffff:2")), Ok(()));
        assert!(
            limits.check_source(v6("2001:db8::3:3")).is_err(),
            "same /64"
        );
        assert_eq!(
            limits.check_source(v6("2001:db8:0:1::1")),
            Ok(()),
            "next /64"
        );
        assert_eq!(limits.tracked_ips(), 2);
    }

    #[test]
    fn an_ipv6_prefix_outside_16_to_128_is_refused() {
        for bad in [0, 15, 129] {
            let spec = RateLimitSpec {
                ipv6_prefix_length: Some(bad),
                ..RateLimitSpec::default()
            };
            let err = RateLimits::from_spec(Some(&spec)).expect_err("out of range");
            assert!(
                err.to_string()
                    .starts_with("spec.rateLimit.ipv6PrefixLength"),
                "{err}"
            );
        }
        let spec = RateLimitSpec {
            ipv6_prefix_length: Some(56),
            ..RateLimitSpec::default()
        };
        assert_eq!(
            RateLimits::from_spec(Some(&spec))
                .expect("56")
                .ipv6_prefix(),
            56
        );
        assert_eq!(
            RateLimits::from_spec(None).expect("default").ipv6_prefix(),
            64
        );
    }

    #[test]
    fn the_global_default_counts_only_what_check_global_takes() {
        // The default quotas, on a clock that does not move.
        let limits = RateLimits::with_clock(
            Some(quota(DEFAULT_PER_SOURCE_IP)),
            DEFAULT_GLOBAL.map(quota),
            MAX_TRACKED_IPS,
            FakeRelativeClock::default(),
        );
        // The source check never touches the global bucket.
        for n in 0..5_000 {
            assert_eq!(limits.check_source(ip(n)), Ok(()));
        }
        let burst = DEFAULT_GLOBAL
            .and_then(|r| r.burst)
            .expect("a default burst");
        for _ in 0..burst {
            assert_eq!(limits.check_global(), Ok(()));
        }
        let limited = limits.check_global().expect_err("global burst used up");
        assert_eq!(limited.scope, Scope::Global);
    }

    #[test]
    fn per_source_slots_are_bounded_and_given_back() {
        let slots = PerSourceSlots::new(2, 64);
        let a = ip(1);
        let first = slots.try_take(a).expect("1st");
        let second = slots.try_take(a).expect("2nd");
        assert!(slots.try_take(a).is_none(), "cap reached");
        let other = slots.try_take(ip(2)).expect("another source");
        assert_eq!(slots.held(a), 2);
        drop(first);
        assert_eq!(slots.held(a), 1);
        let third = slots.try_take(a).expect("room again");
        drop((second, third, other));
        assert_eq!(slots.sources(), 0, "empty entries are removed");
        // IPv6 addresses of one /64 share the cap.
        let v6 = |s: &str| s.parse::<IpAddr>().expect("ip");
        let _x = slots.try_take(v6("2001:db8::1")).expect("1st");
        let _y = slots.try_take(v6("2001:db8::2")).expect("2nd");
        assert!(slots.try_take(v6("2001:db8::3")).is_none());
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
