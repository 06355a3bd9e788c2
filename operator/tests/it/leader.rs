//! Leader election against the real API server: of two candidates only one
//! leads, and when it stops renewing the other takes over.

use std::time::Duration;

use hookwarden_operator::leader::{Elector, LEASE_NAME, Timing};
use hookwarden_tests::TestNamespace;
use k8s_openapi::api::coordination::v1::Lease;

/// Short enough for a test, long enough for a loaded 2-core machine.
const TIMING: Timing = Timing {
    lease: Duration::from_secs(4),
    renew: Duration::from_millis(500),
};

#[tokio::test]
async fn only_one_leads_and_the_other_takes_over_when_it_stops_renewing() {
    let ns = TestNamespace::create("leader").await.expect("namespace");
    let a = Elector::new(ns.client(), ns.name(), LEASE_NAME, "replica-a", TIMING);
    let b = Elector::new(ns.client(), ns.name(), LEASE_NAME, "replica-b", TIMING);

    assert!(
        a.try_acquire_or_renew().await.expect("a tries"),
        "a takes the free lease"
    );
    assert!(
        !b.try_acquire_or_renew().await.expect("b tries"),
        "b must not lead too"
    );
    assert!(
        a.try_acquire_or_renew().await.expect("a renews"),
        "a renews its own lease"
    );

    // a keeps renewing in the background; b waits the whole time.
    let holding = tokio::spawn({
        let a = a.clone();
        async move { a.hold().await }
    });
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.acquire().await }
    });
    tokio::time::sleep(TIMING.lease * 2).await;
    assert!(!waiting.is_finished(), "b acquired a lease a kept renewing");
    assert!(
        !holding.is_finished(),
        "a lost a lease nobody else could take"
    );

    // a stops renewing (a crash): b takes over once the lease expired.
    holding.abort();
    let stopped = tokio::time::Instant::now();
    tokio::time::timeout(TIMING.lease * 3, waiting)
        .await
        .expect("b takes over within three lease durations")
        .expect("b's task");
    assert!(
        stopped.elapsed() + TIMING.renew >= TIMING.lease / 2,
        "b took a lease that had not expired"
    );
    let lease = ns.api::<Lease>().get(LEASE_NAME).await.expect("Lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.lease_duration_seconds, Some(4));

    // The old leader, back, neither leads nor keeps holding.
    assert!(!a.try_acquire_or_renew().await.expect("a tries again"));
    tokio::time::timeout(TIMING.lease, a.hold())
        .await
        .expect("a notices at its next renewal that b holds the lease");
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once_and_only_by_its_holder() {
    let ns = TestNamespace::create("leader-release")
        .await
        .expect("namespace");
    // A lease far longer than the test: only a release lets b in.
    let long = Timing {
        lease: Duration::from_secs(300),
        renew: Duration::from_millis(500),
    };
    let a = Elector::new(ns.client(), ns.name(), LEASE_NAME, "replica-a", long);
    let b = Elector::new(ns.client(), ns.name(), LEASE_NAME, "replica-b", long);
    assert!(a.try_acquire_or_renew().await.expect("a tries"));
    assert!(!b.try_acquire_or_renew().await.expect("b tries"));

    // Only the holder may release it.
    assert!(
        !b.release().await.expect("b releases"),
        "b does not hold it"
    );
    assert!(!b.try_acquire_or_renew().await.expect("b tries again"));

    assert!(a.release().await.expect("a releases"));
    let spec = ns
        .api::<Lease>()
        .get(LEASE_NAME)
        .await
        .expect("Lease")
        .spec
        .expect("spec");
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert!(
        b.try_acquire_or_renew().await.expect("b takes over"),
        "a released lease is free at once"
    );
    // Released twice: the second finds it is b's and leaves it.
    assert!(!a.release().await.expect("a releases again"));
    let spec = ns
        .api::<Lease>()
        .get(LEASE_NAME)
        .await
        .expect("Lease")
        .spec
        .expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}
