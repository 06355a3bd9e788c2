//! `hookwarden-operator`: the control plane of Hookwarden.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookwarden_operator::app::{self, Election, Options};
use hookwarden_operator::reconcile::Config;
use hookwarden_operator::reconcile::stream::Credentials;
use hookwarden_operator::resources::Settings;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Hookwarden operator: reconciles WebhookEndpoint and WebhookSubscription resources"
)]
struct Cli {
    /// How log lines are written: `text` for a terminal, `json`
    /// (one object a line, like the receiver's) for a log collector.
    #[arg(
        long,
        global = true,
        env = "HOOKWARDEN_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The formats of `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, the event's fields at the top level.
    Json,
}

/// The kinds of `--default-issuer-kind`, spelled as cert-manager does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum IssuerKindArg {
    /// A namespaced issuer, in the endpoint's namespace.
    #[value(name = "Issuer")]
    Issuer,
    /// A cluster-wide issuer.
    #[value(name = "ClusterIssuer")]
    ClusterIssuer,
}

/// The values of `--default-forwarded-headers`, spelled as in
/// `spec.forwardedHeaders`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ForwardedHeadersArg {
    /// `X-Forwarded-For` and `X-Forwarded-Proto` (ingress-nginx, Envoy,
    /// Traefik, HAProxy, cloud load balancers).
    #[value(name = "XForwardedFor")]
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    #[value(name = "Forwarded")]
    Forwarded,
}

impl From<ForwardedHeadersArg> for hookwarden_crds::ForwardedHeaders {
    fn from(headers: ForwardedHeadersArg) -> Self {
        match headers {
            ForwardedHeadersArg::XForwardedFor => Self::XForwardedFor,
            ForwardedHeadersArg::Forwarded => Self::Forwarded,
        }
    }
}

impl From<IssuerKindArg> for hookwarden_crds::IssuerKind {
    fn from(kind: IssuerKindArg) -> Self {
        match kind {
            IssuerKindArg::Issuer => Self::Issuer,
            IssuerKindArg::ClusterIssuer => Self::ClusterIssuer,
        }
    }
}

// Parsed once at start and taken apart at once: boxing `Run`'s flags would
// buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Install the CRDs, then reconcile WebhookEndpoints and WebhookSubscriptions until SIGTERM or
    /// Ctrl-C; passes in flight finish before the process exits.
    Run {
        /// The receiver image every receiver Deployment runs.
        #[arg(long, env = "HOOKWARDEN_RECEIVER_IMAGE", default_value = DEFAULT_RECEIVER_IMAGE)]
        receiver_image: String,
        /// The NATS URL of endpoints that do not set `spec.nats.url`.
        #[arg(
            long,
            env = "HOOKWARDEN_NATS_URL",
            default_value = "nats://nats.nats.svc:4222"
        )]
        nats_url: String,
        /// Trusted proxies (comma-separated CIDRs) of endpoints that set no
        /// `spec.trustedProxies`: the network of the ingress controller's
        /// pods. Receivers refuse every request no trusted proxy reports as
        /// HTTPS, so leave it empty only if every endpoint sets its own.
        #[arg(
            long,
            env = "HOOKWARDEN_DEFAULT_TRUSTED_PROXIES",
            value_delimiter = ',',
            value_parser = parse_cidr
        )]
        default_trusted_proxies: Vec<String>,
        /// The forwarding headers the ingress controller writes, for
        /// endpoints that set no `spec.forwardedHeaders`: the only ones
        /// receivers believe about the client's address and scheme (every
        /// other kind is passed through by the proxy as the client wrote
        /// it). ingress-nginx, Envoy and Traefik write `XForwardedFor`.
        #[arg(
            long,
            env = "HOOKWARDEN_DEFAULT_FORWARDED_HEADERS",
            value_enum,
            default_value_t = ForwardedHeadersArg::XForwardedFor
        )]
        default_forwarded_headers: ForwardedHeadersArg,
        /// The IngressClass of endpoints whose `spec.ingress` sets no
        /// `className` (default: the cluster's default IngressClass).
        #[arg(long, env = "HOOKWARDEN_DEFAULT_INGRESS_CLASS", value_parser = parse_object_name)]
        default_ingress_class: Option<String>,
        /// The cert-manager issuer of endpoints with `spec.ingress` and no
        /// `spec.tls`: they get a Certificate from it (into `<name>-tls`) as
        /// if they named it in `spec.tls.issuerRef`. Default: none, such
        /// Ingresses serve plain HTTP.
        #[arg(long, env = "HOOKWARDEN_DEFAULT_ISSUER_NAME", value_parser = parse_object_name)]
        default_issuer_name: Option<String>,
        /// The kind of `--default-issuer-name`: `ClusterIssuer`, or `Issuer`
        /// (which must then exist in each endpoint's namespace).
        #[arg(
            long,
            env = "HOOKWARDEN_DEFAULT_ISSUER_KIND",
            value_enum,
            default_value_t = IssuerKindArg::ClusterIssuer
        )]
        default_issuer_kind: IssuerKindArg,
        /// A NATS `.creds` file the operator uses to manage the streams of
        /// endpoints on the default NATS (`--nats-url`) that have no
        /// `spec.nats.credentialsSecretRef`. Never passed to receivers.
        #[arg(long, env = "HOOKWARDEN_NATS_CREDENTIALS_FILE")]
        nats_credentials_file: Option<std::path::PathBuf>,
        /// Watch only these namespaces, one watch each: repeat the flag or
        /// separate them by commas (default: all namespaces).
        #[arg(
            long,
            env = "HOOKWARDEN_WATCH_NAMESPACE",
            value_delimiter = ',',
            value_parser = parse_namespace
        )]
        namespace: Vec<String>,
        /// How often the JetStream stream of each ready endpoint is checked
        /// for drift on NATS (deleted or edited there), in seconds; the
        /// checks are spread over the interval, one JetStream request each
        /// and none to the API server. A ready endpoint is otherwise not
        /// reconciled until something changes.
        #[arg(
            long,
            env = "HOOKWARDEN_STREAM_CHECK_INTERVAL",
            default_value_t = hookwarden_operator::reconcile::DEFAULT_STREAM_CHECK_INTERVAL.as_secs(),
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        stream_check_interval: u64,
        /// How often each WebhookSubscription is reconciled again to refresh
        /// its lag, dead-letter count and last error in the status, in
        /// seconds (a few API and JetStream requests per subscription).
        #[arg(
            long,
            env = "HOOKWARDEN_SUBSCRIPTION_STATUS_INTERVAL",
            default_value_t = hookwarden_operator::reconcile::DEFAULT_SUBSCRIPTION_STATUS_INTERVAL.as_secs(),
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        subscription_status_interval: u64,
        /// How long to wait for the CRD to be Established, in seconds.
        #[arg(long, default_value_t = 30)]
        crd_timeout_secs: u64,
        /// Where `/healthz`, `/readyz` and `/metrics` are served (the
        /// kubelet's probes and Prometheus, not the internet).
        #[arg(
            long,
            env = "HOOKWARDEN_OPERATOR_METRICS_LISTEN",
            default_value = "0.0.0.0:8080"
        )]
        metrics_listen: SocketAddr,
        /// Reconcile only while holding the Lease `hookwarden-operator`, so
        /// several replicas can run and only one reconciles.
        #[arg(long, env = "HOOKWARDEN_LEADER_ELECTION")]
        leader_election: bool,
        /// The namespace of the Lease (the operator's own namespace).
        #[arg(long, env = "POD_NAMESPACE")]
        leader_election_namespace: Option<String>,
        /// Where the ConfigMap `hookwarden-source-ranges` keeps the last
        /// good answer of every `spec.allowedSources` list (the operator's
        /// own namespace). Without it the lists are kept in memory only.
        #[arg(long, env = "POD_NAMESPACE", value_parser = parse_namespace)]
        source_ranges_namespace: Option<String>,
        /// Seconds between fetches of each `spec.allowedSources` list (a
        /// tenth of it added at random).
        #[arg(
            long,
            env = "HOOKWARDEN_SOURCE_RANGES_REFRESH",
            default_value_t = hookwarden_operator::ranges::DEFAULT_REFRESH.as_secs(),
            value_parser = clap::value_parser!(u64).range(60..)
        )]
        source_ranges_refresh: u64,
        /// Seconds after its last good fetch a list makes the condition
        /// `SourceRangesCurrent` False (its ranges stay in use).
        #[arg(
            long,
            env = "HOOKWARDEN_SOURCE_RANGES_MAX_AGE",
            default_value_t = hookwarden_operator::ranges::DEFAULT_MAX_AGE.as_secs(),
            value_parser = clap::value_parser!(u64).range(60..)
        )]
        source_ranges_max_age: u64,
        /// The tracing variables (comma-separated names, each `OTEL_*`) of
        /// the operator's own environment copied onto every receiver and
        /// forwarder it runs, those that are set: its workloads then export
        /// to the same OTLP endpoint with the same sampler (their service
        /// names stay their own). They are plain values in the Deployments:
        /// never list one that carries a credential (`OTEL_EXPORTER_OTLP_HEADERS`).
        #[arg(
            long,
            env = "HOOKWARDEN_WORKLOAD_TRACING_ENV",
            value_delimiter = ',',
            value_parser = parse_otel_name,
            default_value = "OTEL_EXPORTER_OTLP_ENDPOINT,OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,OTEL_TRACES_SAMPLER,OTEL_TRACES_SAMPLER_ARG"
        )]
        workload_tracing_env: Vec<String>,
    },
    /// Apply the WebhookEndpoint and WebhookSubscription CRDs to the cluster of the current kubeconfig
    /// (or in-cluster config) and wait until it is served.
    InstallCrd {
        /// How long to wait for the CRD to be Established, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
}

/// The name of an OpenTelemetry variable (`OTEL_` and upper-case letters,
/// digits, `_`): only those are passed on to the workloads.
fn parse_otel_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.starts_with("OTEL_")
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(name.to_owned())
    } else {
        Err(format!("{text:?} is not an OTEL_* variable name"))
    }
}

/// The values of the variables `names` in the operator's environment, those
/// that are set and not empty.
fn workload_env(names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|name| {
            let value = std::env::var(name).ok()?;
            (!value.trim().is_empty()).then(|| (name.clone(), value))
        })
        .collect()
}

/// A CIDR, checked here so a typo stops the operator at start instead of
/// every receiver.
fn parse_cidr(text: &str) -> Result<String, String> {
    text.trim()
        .parse::<ipnet::IpNet>()
        .map(|net| net.to_string())
        .map_err(|e| format!("{text:?} is not a CIDR such as 10.244.0.0/16: {e}"))
}

/// Logs to stdout at the level of `RUST_LOG` (default `info`), every line
/// (and a panic's message) without the secrets the operator has read (see
/// `hookwarden_core::logging`).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::Layer as _;
    hookwarden_core::logging::redact_panics();
    let logs =
        tracing_subscriber::fmt::layer().with_writer(hookwarden_core::logging::redacting_stdout());
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        // As the receiver does, with the current span (the reconcile span
        // names the endpoint's namespace and name) but not the whole list.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    // Traces too when OTEL_EXPORTER_OTLP_ENDPOINT asks (a span per reconcile pass).
    hookwarden_core::telemetry::init_subscriber(logs, "hookwarden-operator");
}

/// The name of a Kubernetes object (a DNS subdomain: lowercase letters,
/// digits, `-` and `.`), checked here so a typo stops the operator at start
/// instead of leaving every Ingress unserved.
fn parse_object_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && text
            .bytes()
            .next()
            .zip(text.bytes().last())
            .is_some_and(|(first, last)| {
                first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
            });
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)"
        ))
    }
}

/// A namespace name (a DNS label), checked here so a typo stops the
/// operator at start instead of watching a namespace that never exists.
fn parse_namespace(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.len() <= 63 && !text.contains('.') && parse_object_name(text).is_ok() {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

/// The receiver this operator version was released with.
const DEFAULT_RECEIVER_IMAGE: &str =
    concat!("ghcr.io/hookwarden/receiver:", env!("CARGO_PKG_VERSION"));

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hookwarden-operator: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(operator_main());
    // The last spans leave while the runtime still runs.
    hookwarden_core::telemetry::shutdown();
    // A blocking task (a DNS lookup of an unreachable NATS, say) must not
    // hold the exit: dropping the runtime would wait for it without bound.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn operator_main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run {
            receiver_image,
            nats_url,
            default_trusted_proxies,
            default_forwarded_headers,
            default_ingress_class,
            default_issuer_name,
            default_issuer_kind,
            nats_credentials_file,
            namespace,
            stream_check_interval,
            subscription_status_interval,
            crd_timeout_secs,
            metrics_listen,
            leader_election,
            leader_election_namespace,
            source_ranges_namespace,
            source_ranges_refresh,
            source_ranges_max_age,
            workload_tracing_env,
        } => {
            let election = match (leader_election, leader_election_namespace) {
                (false, _) => None,
                (true, Some(namespace)) => Some(Election::as_this_pod(namespace)),
                (true, None) => {
                    eprintln!(
                        "hookwarden-operator: --leader-election needs --leader-election-namespace (or POD_NAMESPACE)"
                    );
                    return ExitCode::FAILURE;
                }
            };
            // Checked at start (a typo stops the operator, not every
            // endpoint), which also keeps its password or token out of every
            // log line from now on. Not a clap value parser: clap's error
            // would repeat the whole URL.
            if let Err(err) = hookwarden_core::nats_url::NatsUrl::parse(&nats_url) {
                eprintln!("hookwarden-operator: --nats-url: {err}");
                return ExitCode::FAILURE;
            }
            let nats_credentials = match nats_credentials_file {
                None => None,
                Some(path) => match std::fs::read(&path) {
                    Ok(creds) => Some(Credentials::new(creds)),
                    Err(err) => {
                        eprintln!(
                            "hookwarden-operator: cannot read --nats-credentials-file {}: {err}",
                            path.display()
                        );
                        return ExitCode::FAILURE;
                    }
                },
            };
            let config = Config {
                settings: Settings {
                    receiver_image,
                    nats_url,
                    default_trusted_proxies,
                    default_forwarded_headers: default_forwarded_headers.into(),
                    default_ingress_class,
                    default_issuer: default_issuer_name.map(|name| hookwarden_crds::IssuerRef {
                        name,
                        kind: default_issuer_kind.into(),
                    }),
                    workload_env: workload_env(&workload_tracing_env),
                },
                namespaces: namespace,
                nats_credentials,
                stream_check_interval: Duration::from_secs(stream_check_interval),
                subscription_status_interval: Duration::from_secs(subscription_status_interval),
                ranges: hookwarden_operator::ranges::RangesConfig {
                    namespace: source_ranges_namespace,
                    refresh: Duration::from_secs(source_ranges_refresh),
                    max_age: Duration::from_secs(source_ranges_max_age),
                    fetcher: None,
                },
                pool_secret_budget: hookwarden_operator::resources::pool::POOL_SECRET_BUDGET,
            };
            let client = match kube::Client::try_default().await {
                Ok(client) => client,
                Err(error) => {
                    tracing::error!(%error, "no Kubernetes client configuration");
                    return ExitCode::FAILURE;
                }
            };
            let options = Options {
                crd_timeout: Duration::from_secs(crd_timeout_secs),
                metrics_listen,
                election,
            };
            match app::run(client, config, options, app::terminated()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "exiting");
                    ExitCode::FAILURE
                }
            }
        }
        Command::InstallCrd { timeout_secs } => {
            let client = match kube::Client::try_default().await {
                Ok(client) => client,
                Err(err) => {
                    eprintln!("hookwarden-operator: no Kubernetes client configuration: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match hookwarden_operator::crd::install(client, Duration::from_secs(timeout_secs)).await
            {
                Ok(crds) => {
                    for crd in crds {
                        println!("installed CRD {}", crd.metadata.name.unwrap_or_default());
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("hookwarden-operator: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_trusted_proxies_are_checked_cidrs() {
        let cli = Cli::try_parse_from([
            "hookwarden-operator",
            "run",
            "--default-trusted-proxies",
            "10.244.0.0/16, fd00:10:244::/56",
        ])
        .expect("valid CIDRs");
        let Command::Run {
            default_trusted_proxies,
            ..
        } = cli.command
        else {
            panic!("run");
        };
        assert_eq!(
            default_trusted_proxies,
            ["10.244.0.0/16", "fd00:10:244::/56"]
        );

        let refused = Cli::try_parse_from([
            "hookwarden-operator",
            "run",
            "--default-trusted-proxies",
            "10.244.0.0",
        ])
        .expect_err("not a CIDR");
        assert!(refused.to_string().contains("is not a CIDR"), "{refused}");
    }

    #[test]
    fn default_forwarded_headers_are_spelt_as_in_the_spec() {
        let parse = |args: &[&str]| {
            let mut all = vec!["hookwarden-operator", "run"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).map(|cli| cli.command) {
                Ok(Command::Run {
                    default_forwarded_headers,
                    ..
                }) => Ok(hookwarden_crds::ForwardedHeaders::from(
                    default_forwarded_headers,
                )),
                Ok(other) => panic!("run parsed as {other:?}"),
                Err(err) => Err(err.to_string()),
            }
        };
        // ingress-nginx's, unless told otherwise.
        assert_eq!(
            parse(&[]),
            Ok(hookwarden_crds::ForwardedHeaders::XForwardedFor)
        );
        for value in hookwarden_crds::ForwardedHeaders::ALL {
            let flag = format!("--default-forwarded-headers={value}");
            assert_eq!(parse(&[&flag]), Ok(value));
        }
        let refused = parse(&["--default-forwarded-headers=X-Forwarded-For"])
            .expect_err("a header name is not a value");
        assert!(refused.contains("XForwardedFor, Forwarded"), "{refused}");
    }

    #[test]
    fn default_ingress_class_is_an_object_name() {
        let cli = Cli::try_parse_from([
            "hookwarden-operator",
            "run",
            "--default-ingress-class=nginx-public",
        ])
        .expect("valid name");
        let Command::Run {
            default_ingress_class,
            ..
        } = cli.command
        else {
            panic!("run");
        };
        assert_eq!(default_ingress_class.as_deref(), Some("nginx-public"));

        assert!(parse_object_name("").is_err(), "empty");
        for bad in ["Nginx", "-nginx", "nginx-", "nginx_public"] {
            let flag = format!("--default-ingress-class={bad}");
            let refused =
                Cli::try_parse_from(["hookwarden-operator", "run", flag.as_str()]).expect_err(bad);
            assert!(
                refused
                    .to_string()
                    .contains("is not a Kubernetes object name"),
                "{bad:?}: {refused}"
            );
        }
    }

    #[test]
    fn the_default_issuer_is_a_name_and_a_cert_manager_kind() {
        let run = |args: &[&str]| -> Result<(Option<String>, IssuerKindArg), clap::Error> {
            let cli = Cli::try_parse_from(
                ["hookwarden-operator", "run"]
                    .into_iter()
                    .chain(args.iter().copied()),
            )?;
            let Command::Run {
                default_issuer_name,
                default_issuer_kind,
                ..
            } = cli.command
            else {
                panic!("run");
            };
            Ok((default_issuer_name, default_issuer_kind))
        };
        assert_eq!(
            run(&[]).expect("no issuer"),
            (None, IssuerKindArg::ClusterIssuer)
        );
        assert_eq!(
            run(&["--default-issuer-name=letsencrypt"]).expect("name only"),
            (Some("letsencrypt".to_owned()), IssuerKindArg::ClusterIssuer)
        );
        assert_eq!(
            run(&[
                "--default-issuer-name=team-ca",
                "--default-issuer-kind=Issuer"
            ])
            .expect("namespaced"),
            (Some("team-ca".to_owned()), IssuerKindArg::Issuer)
        );
        assert_eq!(
            hookwarden_crds::IssuerKind::from(IssuerKindArg::Issuer),
            hookwarden_crds::IssuerKind::Issuer
        );

        let refused = run(&["--default-issuer-kind=clusterissuer"]).expect_err("case");
        assert!(
            refused.to_string().contains("ClusterIssuer"),
            "the message names the kinds: {refused}"
        );
        let refused = run(&["--default-issuer-name=Lets_Encrypt"]).expect_err("bad name");
        assert!(
            refused
                .to_string()
                .contains("is not a Kubernetes object name"),
            "{refused}"
        );
    }

    #[test]
    fn namespaces_are_repeated_or_comma_separated_names() {
        let namespaces = |args: &[&str]| -> Result<Vec<String>, clap::Error> {
            let cli = Cli::try_parse_from(
                ["hookwarden-operator", "run"]
                    .into_iter()
                    .chain(args.iter().copied()),
            )?;
            let Command::Run { namespace, .. } = cli.command else {
                panic!("run");
            };
            Ok(namespace)
        };
        assert!(namespaces(&[]).expect("none").is_empty(), "all namespaces");
        assert_eq!(
            namespaces(&["--namespace=webhooks"]).expect("one"),
            ["webhooks"]
        );
        assert_eq!(
            namespaces(&["--namespace=team-a, team-b", "--namespace", "team-c"]).expect("three"),
            ["team-a", "team-b", "team-c"]
        );
        for bad in ["Team-A", "team.a", "team_a"] {
            let flag = format!("--namespace={bad}");
            let refused = namespaces(&[flag.as_str()]).expect_err(bad);
            assert!(
                refused.to_string().contains("is not a namespace name"),
                "{bad:?}: {refused}"
            );
        }
    }

    #[test]
    fn log_format_is_text_or_json_before_or_after_the_subcommand() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("hookwarden-operator").chain(args.iter().copied()))
        };
        let default = parse(&["run"]).expect("no flag");
        assert_eq!(default.log_format, LogFormat::Text);
        let after = parse(&["run", "--log-format=json"]).expect("after run");
        assert_eq!(after.log_format, LogFormat::Json);
        let before = parse(&["--log-format", "json", "install-crd"]).expect("before");
        assert_eq!(before.log_format, LogFormat::Json);
        let text = parse(&["run", "--log-format=text"]).expect("text");
        assert_eq!(text.log_format, LogFormat::Text);

        let refused = parse(&["run", "--log-format=logfmt"]).expect_err("unknown format");
        let refused = refused.to_string();
        assert!(refused.contains("logfmt"), "{refused}");
        assert!(
            refused.contains("text") && refused.contains("json"),
            "{refused}"
        );
    }
}
