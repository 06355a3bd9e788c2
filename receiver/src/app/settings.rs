//! How a receiver is told to run: the flags of `serve` ([`ServeArgs`]) and
//! the settings they describe, checked ([`Settings`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hookwarden_crds::SecretKeyRef;

use crate::body;
use crate::ranges::fetch::RangeFetcher;
use crate::reload;
use crate::server::{self, ServeOptions};
use crate::transport::{self, Limits, Mode, TlsMode};
use crate::verify::keys::KeyFetcher;

/// How often a stream managed elsewhere (`createStream: false`) is looked up
/// (one `STREAM.INFO`), so `/readyz` notices it deleted under a running
/// receiver.
pub const STREAM_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The options of `serve` (flags, or the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The WebhookEndpoint manifest (YAML).
    #[arg(
        long,
        env = "HOOKWARDEN_ENDPOINT",
        required_unless_present = "pool_dir",
        conflicts_with = "pool_dir"
    )]
    pub endpoint: Option<PathBuf>,
    /// Directory laid out like mounted Secrets: `<dir>/<secret name>/<key>`.
    #[arg(
        long,
        env = "HOOKWARDEN_SECRETS_DIR",
        required_unless_present = "pool_dir",
        conflicts_with = "pool_dir"
    )]
    pub secrets_dir: Option<PathBuf>,
    /// Serve a pool: every endpoint whose manifest is in this directory
    /// (`endpoint.<name>.yaml`, its secrets `secret.<name>_<key>`: a pool's
    /// Secret mounted whole), routed by host and path. Instead of
    /// --endpoint and --secrets-dir.
    #[arg(long, env = "HOOKWARDEN_POOL_DIR")]
    pub pool_dir: Option<PathBuf>,
    /// In a pool: the NATS `.creds` file (a user JWT and NKey seed) the
    /// pool's one connection logs in with, as `NAME/KEY` of a Secret whose
    /// key is in --pool-dir like the members' secrets
    /// (`secret.<NAME>_<KEY>`). Read at start; a change needs a restart
    /// (the operator rolls the pool's pods).
    #[arg(
        long,
        env = "HOOKWARDEN_NATS_CREDENTIALS_SECRET_REF",
        // Not `requires = "pool_dir"`: clap lets a required argument be
        // missing when it conflicts with one present (--endpoint), and
        // without --pool-dir --endpoint is required.
        conflicts_with = "endpoint",
        value_parser = parse_secret_key_ref
    )]
    pub nats_credentials_secret_ref: Option<SecretKeyRef>,
    /// In a pool: verified deliveries one endpoint may be storing at once;
    /// more get 503 `overloaded` while the other endpoints still store.
    /// Default: a quarter of --max-in-flight (at least 1).
    #[arg(long, env = "HOOKWARDEN_MAX_IN_FLIGHT_PER_ENDPOINT", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight_per_endpoint: Option<u64>,
    /// The NATS server to store deliveries in.
    #[arg(
        long,
        env = "HOOKWARDEN_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Address to listen on.
    #[arg(long, env = "HOOKWARDEN_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Seconds to wait for JetStream to acknowledge a delivery before
    /// answering 503.
    #[arg(long, env = "HOOKWARDEN_PUBLISH_TIMEOUT_SECS", default_value_t = 3)]
    pub publish_timeout_secs: u64,
    /// Largest accepted body in bytes; larger deliveries get 413. The
    /// process default: a manifest's `spec.request.maxBodyBytes` wins.
    #[arg(long, env = "HOOKWARDEN_MAX_BODY_BYTES", default_value_t = crate::request::DEFAULT_BODY_LIMIT)]
    pub max_body_bytes: usize,
    /// `terminate`: serve HTTPS with --tls-cert/--tls-key (re-read when
    /// the files change). `behind-ingress`: plain HTTP behind a proxy that
    /// terminates TLS. `insecure-http`: plain HTTP for local development
    /// only.
    #[arg(
        long,
        env = "HOOKWARDEN_TLS_MODE",
        value_enum,
        default_value = "terminate"
    )]
    pub tls_mode: TlsMode,
    /// PEM certificate chain (leaf first) for --tls-mode terminate.
    #[arg(long, env = "HOOKWARDEN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate for --tls-mode terminate.
    #[arg(long, env = "HOOKWARDEN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Address of the operations port: /healthz, /readyz, /metrics. Kept
    /// apart from the public listener (in a pod: 0.0.0.0:9090).
    #[arg(
        long,
        env = "HOOKWARDEN_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub metrics_listen: SocketAddr,
    /// Verified deliveries being stored at once; more get 503 `overloaded`
    /// (a stalled NATS is answered quickly instead of queueing).
    #[arg(long, env = "HOOKWARDEN_MAX_IN_FLIGHT", default_value_t = server::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Bytes of request bodies held at once, over all requests; a body that
    /// would pass it gets 503 `overloaded`. Bounds the memory of bodies
    /// whatever the number of connections.
    #[arg(long, env = "HOOKWARDEN_MAX_BUFFERED_BODY_BYTES", default_value_t = body::DEFAULT_MAX_BUFFERED_BYTES)]
    pub max_buffered_body_bytes: usize,
    /// Bodies one source (an IPv4 address, an IPv6 network of
    /// `spec.rateLimit.ipv6PrefixLength` bits) may be sending at once; more
    /// get 429.
    #[arg(long, env = "HOOKWARDEN_MAX_BODY_READS_PER_SOURCE", default_value_t = server::DEFAULT_MAX_BODY_READS_PER_SOURCE)]
    pub max_body_reads_per_source: usize,
    /// Quarantine records (`spec.quarantine`) this process stores per
    /// second, all its endpoints together; in a pool one endpoint may take
    /// a quarter of it, whatever its `maxPerSecond`, so a flood on one
    /// leaves records to the others and cannot fill NATS.
    #[arg(long, env = "HOOKWARDEN_MAX_QUARANTINE_RECORDS_PER_SECOND", default_value_t = crate::quarantine::DEFAULT_MAX_RECORDS_PER_SECOND, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_quarantine_records_per_second: u32,
    /// Connections one source (an IPv4 address, an IPv6 /64) may hold at
    /// once; trusted proxies are not held to it.
    #[arg(long, env = "HOOKWARDEN_MAX_CONNECTIONS_PER_SOURCE", default_value_t = transport::MAX_CONNECTIONS_PER_SOURCE)]
    pub max_connections_per_source: usize,
    /// Seconds between checks of the manifest and secret files for
    /// changes (applied without dropping connections).
    #[arg(long, env = "HOOKWARDEN_RELOAD_INTERVAL_SECS", default_value_t = 2)]
    pub reload_interval_secs: u64,
    /// Seconds a new connection may take to send its first request (after
    /// the TLS handshake) before it is closed.
    #[arg(long, env = "HOOKWARDEN_FIRST_REQUEST_TIMEOUT_SECS", default_value_t = transport::FIRST_REQUEST_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub first_request_timeout_secs: u64,
    /// Seconds a client's connection with no request in progress stays open
    /// (HTTP/1.1 keep-alive and HTTP/2 alike).
    #[arg(long, env = "HOOKWARDEN_IDLE_TIMEOUT_SECS", default_value_t = transport::IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// The idle timeout for connections from trusted proxies: keep it above
    /// the proxy's upstream keep-alive (ingress-nginx 60 s, Traefik 90 s).
    #[arg(long, env = "HOOKWARDEN_PROXY_IDLE_TIMEOUT_SECS", default_value_t = transport::PROXY_IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub proxy_idle_timeout_secs: u64,
    /// Seconds between lookups of a stream managed elsewhere
    /// (`createStream: false`): `/readyz` fails while it is gone. A managed
    /// stream is created again by the next publish that finds it gone.
    #[arg(long, env = "HOOKWARDEN_STREAM_CHECK_INTERVAL_SECS", default_value_t = STREAM_CHECK_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_check_interval_secs: u64,
    /// Where the lists of the manifest's `spec.allowedSources` are kept,
    /// one `<list>.txt` each (one CIDR per line, as `hookwarden ranges
    /// fetch` writes them): read at start when the provider cannot be
    /// reached, written after every good fetch, and re-read when another
    /// process replaces them. Without it the lists live in memory only,
    /// and a receiver that cannot fetch one at start does not start.
    #[arg(long, env = "HOOKWARDEN_SOURCE_RANGES_DIR")]
    pub source_ranges_dir: Option<PathBuf>,
    /// Seconds between fetches of the `spec.allowedSources` lists (a
    /// tenth of it added at random, so receivers do not fetch together).
    #[arg(long, env = "HOOKWARDEN_SOURCE_RANGES_REFRESH_SECS", default_value_t = DEFAULT_SOURCE_RANGES_REFRESH.as_secs(), value_parser = clap::value_parser!(u64).range(60..))]
    pub source_ranges_refresh_secs: u64,
    /// Continue a sender's valid `traceparent` (parent the request span on
    /// it) instead of only linking to it. Only for senders inside your own
    /// system: a sender's trace context is its claim.
    #[arg(long, env = "HOOKWARDEN_TRUST_INCOMING_TRACEPARENT")]
    pub trust_incoming_traceparent: bool,
}

/// `NAME/KEY`, a Secret's key, as a reference.
fn parse_secret_key_ref(text: &str) -> Result<SecretKeyRef, String> {
    match text.split_once('/') {
        Some((name, key)) if !name.is_empty() && !key.is_empty() && !key.contains('/') => {
            Ok(SecretKeyRef {
                name: name.to_owned(),
                key: key.to_owned(),
            })
        }
        _ => Err(format!(
            "expected NAME/KEY (a Secret's name and one of its keys), got {text:?}"
        )),
    }
}

/// How often a standalone receiver fetches its published source ranges.
pub const DEFAULT_SOURCE_RANGES_REFRESH: Duration = Duration::from_secs(6 * 3600);

impl ServeArgs {
    /// The settings these flags describe.
    pub fn settings(self) -> Result<Settings, transport::TransportError> {
        let mode = Mode::from_flags(self.tls_mode, self.tls_cert, self.tls_key)?;
        let mut settings = Settings::new(
            self.endpoint.unwrap_or_default(),
            self.secrets_dir.unwrap_or_default(),
            mode,
        );
        settings.pool_dir = self.pool_dir;
        settings.nats_credentials = self.nats_credentials_secret_ref;
        settings.serve.max_in_flight_per_endpoint = self
            .max_in_flight_per_endpoint
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        settings.nats_url = self.nats_url;
        settings.listen = self.listen;
        settings.metrics_listen = self.metrics_listen;
        settings.publish_timeout = Duration::from_secs(self.publish_timeout_secs);
        settings.max_body_bytes = self.max_body_bytes;
        settings.serve.max_in_flight = self.max_in_flight;
        settings.serve.max_buffered_body_bytes = self.max_buffered_body_bytes;
        settings.serve.max_body_reads_per_source = self.max_body_reads_per_source;
        settings.serve.max_quarantine_records_per_second = self.max_quarantine_records_per_second;
        settings.limits.max_connections_per_source = self.max_connections_per_source;
        settings.reload_interval = Duration::from_secs(self.reload_interval_secs.max(1));
        settings.limits.first_request_timeout =
            Duration::from_secs(self.first_request_timeout_secs);
        settings.limits.idle_timeout = Duration::from_secs(self.idle_timeout_secs);
        settings.limits.proxy_idle_timeout = Duration::from_secs(self.proxy_idle_timeout_secs);
        settings.stream_check_interval = Duration::from_secs(self.stream_check_interval_secs);
        settings.source_ranges_dir = self.source_ranges_dir;
        settings.source_ranges_refresh = Duration::from_secs(self.source_ranges_refresh_secs);
        settings.serve.trust_incoming_traceparent = self.trust_incoming_traceparent;
        Ok(settings)
    }
}

/// How the process runs: what [`ServeArgs`] says, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `WebhookEndpoint` manifest.
    pub endpoint: PathBuf,
    /// `<dir>/<secret name>/<key>`.
    pub secrets_dir: PathBuf,
    /// A pool's directory ([`crate::pool`]): when set, every endpoint in
    /// it is served and `endpoint` and `secrets_dir` are not read.
    pub pool_dir: Option<PathBuf>,
    /// A pool's NATS `.creds` file, a key of its directory
    /// (`--nats-credentials-secret-ref`). A dedicated receiver's is its
    /// manifest's `spec.nats.credentialsSecretRef`.
    pub nats_credentials: Option<SecretKeyRef>,
    /// The NATS server(s); credentials in it are never logged.
    pub nats_url: String,
    /// The public listener.
    pub listen: SocketAddr,
    /// The operations port (`/healthz`, `/readyz`, `/metrics`).
    pub metrics_listen: SocketAddr,
    /// How long JetStream may take to acknowledge a delivery.
    pub publish_timeout: Duration,
    /// The body cap when the manifest sets none.
    pub max_body_bytes: usize,
    /// TLS, behind an ingress, or plain HTTP.
    pub mode: Mode,
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// Request limits that are the process's, not the manifest's (whether
    /// HTTPS must be reported by a proxy follows `mode`).
    pub serve: ServeOptions,
    /// How often the manifest and secrets are checked for changes.
    pub reload_interval: Duration,
    /// How often the stream is checked ([`STREAM_CHECK_INTERVAL`]).
    pub stream_check_interval: Duration,
    /// FOR TESTS ONLY: the key fetcher of the fetched-key presets (AWS SNS,
    /// PayPal, Google Pub/Sub), e.g. one routed to a loopback key server
    /// ([`KeyFetcher::with_test_routes`]). `None`, always in the binary
    /// ([`ServeArgs`] has no flag or variable for it): the process's
    /// ([`KeyFetcher::shared`]), system roots and DNS.
    pub key_fetcher: Option<Arc<KeyFetcher>>,
    /// Where the `allowedSources` lists are kept (`--source-ranges-dir`).
    pub source_ranges_dir: Option<PathBuf>,
    /// How often they are fetched again.
    pub source_ranges_refresh: Duration,
    /// FOR TESTS ONLY: the fetcher of the `allowedSources` lists, e.g. one
    /// routed to a loopback list server
    /// ([`RangeFetcher::with_test_routes`]). `None`, always in the binary:
    /// the system's roots and DNS, public addresses only.
    pub range_fetcher: Option<Arc<RangeFetcher>>,
}

impl Settings {
    /// The defaults of `serve` for the manifest at `endpoint` and the
    /// secrets under `secrets_dir`, in `mode`.
    pub fn new(endpoint: PathBuf, secrets_dir: PathBuf, mode: Mode) -> Self {
        Self {
            endpoint,
            secrets_dir,
            pool_dir: None,
            nats_credentials: None,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            publish_timeout: Duration::from_secs(3),
            max_body_bytes: crate::request::DEFAULT_BODY_LIMIT,
            mode,
            limits: Limits::default(),
            serve: ServeOptions::default(),
            reload_interval: reload::DEFAULT_RELOAD_INTERVAL,
            stream_check_interval: STREAM_CHECK_INTERVAL,
            key_fetcher: None,
            source_ranges_dir: None,
            source_ranges_refresh: DEFAULT_SOURCE_RANGES_REFRESH,
            range_fetcher: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn a_pools_nats_credentials_are_a_secret_key_and_need_a_pool() {
        let flags = Flags::try_parse_from([
            "serve",
            "--pool-dir",
            "/etc/hookwarden/pool",
            "--tls-mode",
            "behind-ingress",
            "--nats-credentials-secret-ref",
            "nats/user.creds",
        ])
        .expect("parses");
        let settings = flags.serve.settings().expect("settings");
        assert_eq!(
            settings.nats_credentials,
            Some(SecretKeyRef {
                name: "nats".to_owned(),
                key: "user.creds".to_owned(),
            })
        );
        for wrong in ["nats", "/user.creds", "nats/", "nats/a/b"] {
            assert!(
                Flags::try_parse_from([
                    "serve",
                    "--pool-dir",
                    "/p",
                    "--nats-credentials-secret-ref",
                    wrong,
                ])
                .is_err(),
                "{wrong}"
            );
        }
        // A dedicated receiver's credentials are its manifest's.
        assert!(
            Flags::try_parse_from([
                "serve",
                "--endpoint",
                "/e.yaml",
                "--secrets-dir",
                "/s",
                "--nats-credentials-secret-ref",
                "nats/user.creds",
            ])
            .is_err()
        );
    }
}
