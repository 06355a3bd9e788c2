//! The receiver in this process, assembled from its manifest exactly as
//! `hookwarden-receiver serve` assembles it (`app::start`): for tests that
//! need its state or many instances; [`crate::EndpointFiles`] holds the
//! files it reads.

use std::time::Duration;

use hookwarden_receiver::app;
use hookwarden_receiver::publish::Target;
use hookwarden_receiver::server::AppState;
use hookwarden_receiver::transport::Mode;
use tokio::sync::oneshot;

use crate::{EndpointFiles, NatsServer};

/// How long JetStream may take to acknowledge, in tests.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The settings `hookwarden-receiver serve` would have for the manifest
/// and secrets at `endpoint` and `secrets_dir`, in `mode`, storing in `nats`,
/// both ports on free loopback ports and a short reload interval.
pub fn settings(
    nats: &NatsServer,
    endpoint: &std::path::Path,
    secrets_dir: &std::path::Path,
    mode: Mode,
) -> app::Settings {
    let mut settings = app::Settings::new(endpoint.to_owned(), secrets_dir.to_owned(), mode);
    settings.nats_url = nats.url().to_owned();
    settings.listen = ([127, 0, 0, 1], 0).into();
    settings.metrics_listen = ([127, 0, 0, 1], 0).into();
    settings.publish_timeout = PUBLISH_TIMEOUT;
    settings.reload_interval = Duration::from_millis(200);
    settings
}

/// A receiver serving on ports of its own; stopped on drop.
#[derive(Debug)]
pub struct InProcessReceiver {
    /// `scheme://127.0.0.1:port` (TLS: `https://localhost:port`).
    pub base: String,
    /// The base with the endpoint's path (`spec.ingress.path`, else `/`).
    pub url: String,
    /// Where deliveries are stored.
    pub target: Target,
    /// What is served now (metrics, path, publisher).
    pub state: AppState,
    /// The operations port, `host:port`.
    pub ops: String,
    /// The manifest and secrets it reads (write them to reload).
    pub files: EndpointFiles,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for InProcessReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl InProcessReceiver {
    /// Writes `manifest` and its secrets (`name/key`, content), then starts
    /// the receiver on them in `mode`, storing in `nats`, with its settings
    /// changed by `configure`.
    ///
    /// # Panics
    /// When the receiver refuses to start (the test's setup is wrong).
    pub async fn start(
        nats: &NatsServer,
        manifest: &str,
        secrets: &[(&str, &[u8])],
        mode: Mode,
        configure: impl FnOnce(&mut app::Settings),
    ) -> Self {
        let files: Vec<(&str, &str, &[u8])> = secrets
            .iter()
            .map(|(name, content)| {
                let (secret, key) = name.split_once('/').expect("a secret as name/key");
                (secret, key, *content)
            })
            .collect();
        let files = EndpointFiles::new(manifest, &files);
        let tls = matches!(mode, Mode::Terminate { .. });
        let mut settings = settings(nats, files.endpoint(), files.secrets_dir(), mode);
        configure(&mut settings);
        let receiver = app::start(settings)
            .await
            .unwrap_or_else(|err| panic!("the receiver starts: {err}"));
        let state = receiver
            .state()
            .expect("a receiver of one endpoint")
            .clone();
        let port = receiver.local_addr().port();
        let base = if tls {
            format!("https://localhost:{port}")
        } else {
            format!("http://127.0.0.1:{port}")
        };
        let url = format!("{base}{}", state.path());
        let ops = receiver.ops_addr().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(receiver.serve(async {
            let _ = stopped.await;
        }));
        Self {
            base,
            url,
            target: state.target(),
            state,
            ops,
            files,
            stop: Some(stop),
        }
    }

    /// The Prometheus text of its metrics.
    pub fn metrics(&self) -> String {
        self.state.metrics().render()
    }
}
