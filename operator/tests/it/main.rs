//! The integration tests of `hookwarden-operator`: one test binary (one
//! link of the crate and its dependencies), a module per subject, against
//! the real control plane (`tests/tools/cluster.sh up`) and real
//! nats-servers. What several modules need is here, once: how long to
//! wait, the image the operator renders, and the operator run in process.

mod crd;
mod dashboards;
mod examples;
mod exposure;
mod leader;
mod nats_auth;
mod pool;
mod pool_nats;
mod pool_shards;
mod reconcile;
mod run;
mod source_ranges;
mod stream;
mod subscription;
mod traces;

use std::time::Duration;

use hookwarden_operator::ops::Ops;
use hookwarden_operator::reconcile::{self as controller, Config};
use hookwarden_operator::resources::Settings;
use hookwarden_tests::{NatsServer, TestNamespace};

/// How long a test waits for the controllers, kwok and NATS to converge.
const WAIT: Duration = Duration::from_secs(90);

/// The receiver image the operator renders (kwok runs no containers, so it
/// is never pulled).
const IMAGE: &str = "registry.invalid/hookwarden/receiver:test";

/// [`hookwarden_tests::eventually`] with [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    hookwarden_tests::eventually(what, WAIT, check).await
}

/// Installs (or updates) the CRDs of this checkout.
async fn install_crds(ns: &TestNamespace) {
    hookwarden_operator::crd::install(ns.client(), Duration::from_secs(30))
        .await
        .expect("CRDs install");
}

/// The controllers of one test, run in this process
/// (`reconcile::run_with_ops`), stopped when dropped; with the nats-server
/// whose streams they manage when they have one of their own.
struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<()>>,
    nats: Option<NatsServer>,
}

impl Operator {
    /// Stops the operator and waits until it has stopped: its passes in
    /// flight finish (graceful shutdown) before its nats-server goes. A
    /// test that starts a second operator stops the first this way, so no
    /// late pass of the first writes a status over the second's (dropping
    /// it only asks it to stop).
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            tokio::time::timeout(WAIT, running)
                .await
                .expect("the operator to stop")
                .expect("the operator's task");
        }
    }

    /// The operator's own nats-server (`--nats-url`).
    fn nats(&self) -> &NatsServer {
        self.nats
            .as_ref()
            .expect("an operator started with a nats-server of its own")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What a test's operator starts from: the test's namespace only, streams
/// on `nats_url`, the default intervals, no published source ranges.
fn operator_config(ns: &TestNamespace, nats_url: &str) -> Config {
    Config {
        settings: Settings {
            receiver_image: IMAGE.to_owned(),
            nats_url: nats_url.to_owned(),
            default_trusted_proxies: Vec::new(),
            default_forwarded_headers: hookwarden_crds::ForwardedHeaders::XForwardedFor,
            default_ingress_class: None,
            default_issuer: None,
            workload_env: Vec::new(),
        },
        namespaces: vec![ns.name().to_owned()],
        nats_credentials: None,
        stream_check_interval: controller::DEFAULT_STREAM_CHECK_INTERVAL,
        subscription_status_interval: controller::DEFAULT_SUBSCRIPTION_STATUS_INTERVAL,
        ranges: Default::default(),
        pool_secret_budget: hookwarden_operator::resources::pool::POOL_SECRET_BUDGET,
    }
}

/// Installs the CRDs and runs the controllers with `config`, counting into
/// `ops`, with the client of `ns`; `nats` lives as long as they do.
async fn run_operator(
    ns: &TestNamespace,
    config: Config,
    ops: Ops,
    nats: Option<NatsServer>,
) -> Operator {
    install_crds(ns).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run_with_ops(
        ns.client(),
        config,
        ops,
        async move {
            let _ = stopped.await;
        },
    ));
    Operator {
        stop: Some(stop),
        running: Some(running),
        nats,
    }
}

/// An operator with a fresh nats-server of its own, its configuration
/// [`operator_config`] changed by `adjust`, counting into `ops`.
async fn start_operator_with(
    ns: &TestNamespace,
    ops: Ops,
    adjust: impl FnOnce(&mut Config),
) -> Operator {
    let nats = NatsServer::start().await.expect("nats-server");
    let mut config = operator_config(ns, nats.url());
    adjust(&mut config);
    run_operator(ns, config, ops, Some(nats)).await
}

/// An operator for `ns` with a fresh nats-server of its own.
async fn start_operator(ns: &TestNamespace) -> Operator {
    start_operator_with(ns, Ops::default(), |_| {}).await
}
