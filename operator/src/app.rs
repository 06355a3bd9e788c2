//! `hookwarden-operator run` as the library runs it: the operations port,
//! the CRDs, leader election, the controllers and a bounded shutdown.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::leader::{Elector, LEASE_NAME, Timing};
use crate::ops::Ops;
use crate::reconcile::Config;

/// How long releasing the Lease at exit may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the controller may take to stop after SIGTERM: with the lease
/// release, well inside Kubernetes' default 30 s grace period.
const CONTROLLER_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// `election`: the namespace of the Lease when leader election is on.
pub async fn run(
    config: Config,
    crd_timeout: Duration,
    metrics_listen: SocketAddr,
    election: Option<String>,
) -> ExitCode {
    // Served from the start: liveness holds during a slow CRD install, and
    // readiness says what is still missing.
    let ops = Ops::default();
    match crate::ops::serve(metrics_listen, ops.clone()).await {
        Ok(addr) => tracing::info!(%addr, "serving /healthz, /readyz and /metrics"),
        Err(error) => {
            tracing::error!(%error, "cannot serve the operations port");
            return ExitCode::FAILURE;
        }
    }
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no Kubernetes client configuration");
            return ExitCode::FAILURE;
        }
    };
    // The CRD ships with the operator: the version that runs is the version
    // of the schema it reconciles.
    if let Err(error) = crate::crd::install(client.clone(), crd_timeout).await {
        tracing::error!(%error, "cannot install the CRD");
        return ExitCode::FAILURE;
    }
    ops.readiness.set_crd_installed();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let (signalled, mut signal_seen) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        match termination().await {
            Ok(signal) => tracing::info!(signal, "shutting down"),
            Err(error) => tracing::error!(%error, "cannot listen for signals; shutting down"),
        }
        let _ = signalled.send(true);
        let _ = stop.send(());
    });
    let elector = election.map(|namespace| {
        // Unique per replica: the pod name in a cluster.
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
        Elector::new(
            client.clone(),
            &namespace,
            LEASE_NAME,
            &identity,
            Timing::default(),
        )
    });
    if let Some(elector) = &elector {
        // A replica standing by is healthy and ready: it takes over when
        // the leader goes, and must not hold up a rollout.
        ops.readiness.set_standing_by(true);
        tokio::select! {
            () = elector.acquire() => {}
            _ = &mut stopped => return ExitCode::SUCCESS,
        }
        ops.readiness.set_standing_by(false);
    }
    // Kept to give the lease up once the controller has stopped.
    let releaser = elector.clone();
    let lost = Arc::new(AtomicBool::new(false));
    // The controller wants a `Sync` shutdown future, which renewing the
    // lease is not: a task renews, and tells the controller through a
    // channel to stop on a signal or a lost lease.
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn({
        let lost = lost.clone();
        async move {
            match elector {
                Some(elector) => tokio::select! {
                    _ = stopped => {}
                    () = elector.hold() => lost.store(true, Ordering::Release),
                },
                None => {
                    let _ = stopped.await;
                }
            }
            let _ = finish.send(());
        }
    });
    let shutdown = async move {
        let _ = finished.await;
    };
    let watched = if config.namespaces.is_empty() {
        "<all>".to_owned()
    } else {
        config.namespaces.join(",")
    };
    tracing::info!(
        receiver_image = %config.settings.receiver_image,
        nats_url = %hookwarden_receiver::redact::redact_url(&config.settings.nats_url),
        namespaces = %watched,
        "reconciling WebhookEndpoints"
    );
    let running = crate::reconcile::run_with_ops(client, config, ops, shutdown);
    // The controller finishes the passes in flight, then stops; bounded, so
    // the process exits (and gives the lease up) within the pod's grace
    // period even if a pass or a watch does not end.
    let overdue = async {
        if signal_seen.wait_for(|seen| *seen).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(CONTROLLER_STOP_TIMEOUT).await;
    };
    tokio::select! {
        () = running => {}
        () = overdue => tracing::warn!(
            timeout_secs = CONTROLLER_STOP_TIMEOUT.as_secs(),
            "the controller did not stop in time after the signal; exiting anyway"
        ),
    }
    if lost.load(Ordering::Acquire) {
        // Restarted by the kubelet, it stands by as a candidate again; no
        // reconcile runs without the lease meanwhile.
        tracing::error!("lost the lease; exiting");
        return ExitCode::FAILURE;
    }
    // Stopped on a signal with the controller finished: a standby takes
    // over at once rather than after the lease expires. Bounded, so an
    // unreachable API server cannot hold up the exit.
    if let Some(elector) = releaser {
        match tokio::time::timeout(RELEASE_TIMEOUT, elector.release()).await {
            Ok(Ok(true)) => tracing::info!("released the lease"),
            Ok(Ok(false)) => tracing::info!("the lease was no longer ours"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot release the lease; it expires"),
            Err(_) => tracing::warn!("releasing the lease timed out; it expires"),
        }
    }
    ExitCode::SUCCESS
}

/// Waits for SIGTERM (what the kubelet sends) or SIGINT.
async fn termination() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
    }
}
