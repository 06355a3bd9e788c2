//! `hookwarden-operator run` as the library runs it: the operations port,
//! the CRDs, leader election, the controllers and a bounded shutdown. The
//! binary parses its flags into [`Options`] and a [`Config`], and turns
//! [`run`]'s result into its exit code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::leader::{Elector, LEASE_NAME, Timing};
use crate::ops::Ops;
use crate::reconcile::Config;
use kube::Client;

/// How long releasing the Lease at exit may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the controller may take to stop after SIGTERM: with the lease
/// release, well inside Kubernetes' default 30 s grace period.
const CONTROLLER_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How the operator runs, besides what its controllers need ([`Config`]).
#[derive(Clone, Debug)]
pub struct Options {
    /// How long to wait for the CRDs to be Established.
    pub crd_timeout: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_listen: SocketAddr,
    /// Reconcile only while holding the Lease; `None`: no leader election.
    pub election: Option<Election>,
}

/// Where and as whom a replica competes for the Lease [`LEASE_NAME`].
#[derive(Clone, Debug)]
pub struct Election {
    /// The namespace of the Lease (the operator's own).
    pub namespace: String,
    /// This replica's name on the Lease, unique per replica.
    pub identity: String,
}

impl Election {
    /// The Lease in `namespace`, held as this pod: `POD_NAME`, else
    /// `HOSTNAME` (the pod name in a cluster), else this process's id.
    pub fn as_this_pod(namespace: String) -> Self {
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
        Self {
            namespace,
            identity,
        }
    }
}

/// Why [`run`] stopped other than on `shutdown`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The operations port could not be opened (taken, say).
    #[error(transparent)]
    Serve(#[from] crate::ops::BindError),
    /// The CRDs could not be installed.
    #[error("cannot install the CRD: {0}")]
    InstallCrd(#[from] crate::crd::CrdError),
    /// Another replica took the Lease while this one was reconciling.
    #[error("lost the lease")]
    LeaseLost,
}

/// Serves the operations port, installs the CRDs, waits for the Lease when
/// `options.election` asks, and reconciles with `client` until `shutdown`
/// completes (then the passes in flight finish, within a bound, and the
/// Lease is released) or the Lease is lost.
pub async fn run(
    client: Client,
    config: Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // Served from the start: liveness holds during a slow CRD install, and
    // readiness says what is still missing.
    let ops = Ops::default();
    let addr = crate::ops::serve(options.metrics_listen, ops.clone()).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    // The CRD ships with the operator: the version that runs is the version
    // of the schema it reconciles.
    crate::crd::install(client.clone(), options.crd_timeout).await?;
    ops.readiness.set_crd_installed();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let (signalled, mut signal_seen) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = signalled.send(true);
        let _ = stop.send(());
    });
    let elector = options.election.map(|election| {
        Elector::new(
            client.clone(),
            &election.namespace,
            LEASE_NAME,
            &election.identity,
            Timing::default(),
        )
    });
    if let Some(elector) = &elector {
        // A replica standing by is healthy and ready: it takes over when
        // the leader goes, and must not hold up a rollout.
        ops.readiness.set_standing_by(true);
        tokio::select! {
            () = elector.acquire() => {}
            _ = &mut stopped => return Ok(()),
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
        nats_url = %hookwarden_core::redact::redact_url(&config.settings.nats_url),
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
        return Err(RunError::LeaseLost);
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
    Ok(())
}

/// Completes on SIGTERM (what the kubelet sends) or SIGINT, or at once when
/// signals cannot be listened for; the `shutdown` of the binary's [`run`].
pub async fn terminated() {
    match termination().await {
        Ok(signal) => tracing::info!(signal, "shutting down"),
        Err(error) => tracing::error!(%error, "cannot listen for signals; shutting down"),
    }
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
