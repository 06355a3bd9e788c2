//! `hookwarden`: send signed test deliveries, verify saved requests and
//! generate secrets. See `docs/cli.md`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use hookwarden_cli as presets;
use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::http::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Hookwarden's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "hookwarden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a delivery signed exactly as the provider would sign it.
    Send(SendArgs),
    /// Secrets for webhook endpoints.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Verify a saved raw HTTP/1.1 request with a provider preset.
    Verify(VerifyArgs),
    /// Print the deliveries published on a NATS subject, live.
    Tail(TailArgs),
    /// List the provider presets: what each verifies, what its secret file
    /// holds, its replay defence and handshake.
    Presets(PresetsArgs),
    /// The records of refused requests of an endpoint with
    /// `spec.quarantine`: why each was refused, from where.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Providers' published source ranges.
    #[command(subcommand)]
    Ranges(RangesCommand),
    /// Deliver stored events of a WebhookSubscription again, signed as the
    /// forwarder signs them and marked `Hookwarden-Replay: true`, to its
    /// destination or to --to; --dry-run lists them.
    Replay(Box<ReplayArgs>),
    /// The dead letters of a WebhookSubscription: list them, or deliver
    /// them again and delete each one delivered.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, clap::Args)]
struct SubscriptionArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// The WebhookSubscription manifest (as the forwarder reads it).
    #[arg(long)]
    subscription: PathBuf,
    /// The WebhookEndpoint manifest its `spec.source.endpoint` names.
    #[arg(long)]
    endpoint: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    source: SubscriptionArgs,
    /// Where the subscription's secrets are, as `<dir>/<name>/<key>` (the
    /// signing secret; the CA of its destination). Not needed with --dry-run.
    #[arg(long, required_unless_present = "dry_run")]
    secrets_dir: Option<PathBuf>,
    /// Send to this URL instead of the subscription's destination (the same
    /// rule: https://, or http:// to a Service or localhost), still signed
    /// with the subscription's secret.
    #[arg(long)]
    to: Option<String>,
    /// The first stream sequence.
    #[arg(long)]
    from_seq: Option<u64>,
    /// The last stream sequence.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Stored at or after: RFC 3339 (2026-01-02T03:04:05Z) or a duration
    /// before now (1h, 30m, 2d).
    #[arg(long)]
    since: Option<String>,
    /// Stored at or before: RFC 3339 or a duration before now.
    #[arg(long)]
    until: Option<String>,
    /// An event type as in `spec.eventTypes` (`push`, `invoice.*`);
    /// repeatable: any of them.
    #[arg(long = "event-type")]
    event_types: Vec<String>,
    /// A delivery id (the stored `Nats-Msg-Id`, the `webhook-id` sent);
    /// repeatable: any of them.
    #[arg(long = "delivery-id")]
    delivery_ids: Vec<String>,
    /// Events sent at most (the first ones in stream order).
    #[arg(long, default_value_t = presets::replay::DEFAULT_LIMIT, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    limit: u64,
    /// List what would be sent (sequence, time, subject, id, size); send
    /// nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Print the subscription's dead letters, oldest first: sequence, time,
    /// where the event was stored, id, attempts, last status, reason, error.
    List {
        #[command(flatten)]
        source: SubscriptionArgs,
        /// Print each as JSON.
        #[arg(long)]
        json: bool,
        /// Dead letters printed at most.
        #[arg(long, default_value_t = presets::replay::DEFAULT_LIMIT, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        limit: u64,
    },
    /// Deliver dead letters again to the subscription's destination (marked
    /// as replays) and delete each from the dead-letter stream once the
    /// destination answered 2xx.
    Redrive(Box<RedriveArgs>),
}

#[derive(Debug, clap::Args)]
struct RedriveArgs {
    #[command(flatten)]
    source: SubscriptionArgs,
    /// Where the subscription's secrets are, as `<dir>/<name>/<key>`.
    #[arg(long, required_unless_present = "dry_run")]
    secrets_dir: Option<PathBuf>,
    /// A dead letter's sequence in the dead-letter stream (as `dlq list`
    /// shows it); repeatable.
    #[arg(long = "seq", required_unless_present = "all", conflicts_with = "all")]
    sequences: Vec<u64>,
    /// Every dead letter of the subscription (up to --limit).
    #[arg(long)]
    all: bool,
    /// Dead letters redriven at most with --all.
    #[arg(long, default_value_t = presets::replay::DEFAULT_LIMIT, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    limit: u64,
    /// List what would be sent; send and delete nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// Print the newest records, oldest first, and exit.
    List {
        #[command(flatten)]
        source: QuarantineSource,
        /// How many records at most.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        last: u64,
    },
    /// Print records as they arrive, until interrupted.
    Tail {
        #[command(flatten)]
        source: QuarantineSource,
    },
}

#[derive(Debug, clap::Args)]
struct QuarantineSource {
    #[command(flatten)]
    nats: NatsArgs,
    /// Print each record as its JSON instead of one readable line.
    #[arg(long)]
    json: bool,
    /// The endpoint, `<namespace>/<name>`.
    endpoint: String,
}

#[derive(Debug, clap::Args)]
struct NatsArgs {
    /// The NATS server (or a comma-separated list); `user:password@` or
    /// `token@` in it (percent-encoded) log in, as with the `nats` CLI.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// A NATS `.creds` file (user JWT and NKey seed) to log in with.
    #[arg(long)]
    nats_credentials_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum RangesCommand {
    /// Fetch one published list (as `spec.allowedSources` names it) and
    /// write its ranges, one CIDR per line: the file a standalone receiver
    /// reads from `--source-ranges-dir`. The same strict parsing and
    /// plausibility rules as the operator's apply; an existing output file
    /// is the previous list (a list that lost more than half is refused).
    Fetch(RangesFetchArgs),
}

#[derive(Debug, clap::Args)]
struct RangesFetchArgs {
    /// A provider (github, bitbucket, stripe, pagerduty, zoom, paddle,
    /// aws-sns) or an https:// URL of a JSON document (with --json-path).
    source: String,
    /// Which of the provider's lists (github: a key of its meta API,
    /// default hooks; paddle: live or sandbox).
    #[arg(long)]
    service: Option<String>,
    /// Which region's list (aws-sns: an AWS region; pagerduty: us or eu).
    #[arg(long)]
    region: Option<String>,
    /// Where the ranges are in the JSON at a URL, e.g. `$.prefixes[*].ip_prefix`.
    #[arg(long)]
    json_path: Option<String>,
    /// The file to write (replaced atomically); default: standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct PresetsArgs {
    /// Print the Markdown table of docs/providers.md.
    #[arg(long)]
    markdown: bool,
}

#[derive(Debug, clap::Args)]
struct TailArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// The subject (wildcards allowed), e.g. `webhooks.github.>`.
    subject: String,
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// The provider preset (github, stripe, standard-webhooks, ...); with
    /// --endpoint, the manifest's.
    #[arg(long, required_unless_present = "endpoint")]
    provider: Option<String>,
    /// The file holding the signing secret, used byte for byte (discord,
    /// sendgrid: the private key; a Meta --handshake: the verify token).
    /// With --endpoint, default: the first secretRefs entry in --secrets-dir.
    #[arg(long, required_unless_present = "endpoint")]
    secret_file: Option<PathBuf>,
    /// A WebhookEndpoint manifest: provider, generic checks, public URL and
    /// secret refs come from it.
    #[arg(long, requires = "secrets_dir")]
    endpoint: Option<PathBuf>,
    /// Where --endpoint's secrets are, as `<dir>/<name>/<key>` (as the receiver reads them).
    #[arg(long)]
    secrets_dir: Option<PathBuf>,
    /// Where to send the delivery (http:// or https://).
    #[arg(long)]
    url: String,
    /// Twilio, Square: the public URL the provider would call, without
    /// query (the query of --url is added). Default: --url itself, or the
    /// manifest's publicUrl / ingress.
    #[arg(long)]
    public_url: Option<String>,
    /// Send the provider's endpoint handshake (every preset `hookwarden
    /// presets` lists with one) and check the answer.
    #[arg(long)]
    handshake: bool,
    /// The event type (a header, or a field of the default body).
    #[arg(long, default_value = "ping")]
    event: String,
    /// The delivery id (a header, or a field of the default body); random by default.
    #[arg(long)]
    delivery_id: Option<String>,
    /// The signing time, in Unix seconds, for presets that sign one (e.g. an
    /// hour ago, to check that a stale replay is refused); default: now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    timestamp: Option<i64>,
    /// The body: a file, or `-` for standard input. Default: the preset's JSON body.
    #[arg(long)]
    body: Option<String>,
    /// An extra header `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// PEM file of CA certificates to trust in addition to the system's.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long)]
    insecure: bool,
    /// Connect to ADDRESS:PORT instead of the URL's host and port (e.g. an
    /// ingress controller before DNS points at it); TLS server name,
    /// certificate check and Host stay the URL's, as with curl's --connect-to.
    #[arg(long, value_name = "ADDRESS:PORT")]
    connect_to: Option<String>,
    /// Print an equivalent curl command instead of sending.
    #[arg(long)]
    print_curl: bool,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Print 32 random bytes from the OS RNG.
    Generate {
        /// The encoding.
        #[arg(long, value_enum, default_value_t = Format::Hex)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// 64 lowercase hex digits.
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// `whsec_<base64>` (Standard Webhooks, Svix, GitLab signing tokens).
    Whsec,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The provider preset; with --endpoint, the manifest's.
    #[arg(long, required_unless_present = "endpoint")]
    provider: Option<String>,
    /// A file holding one secret, byte for byte (repeatable; the index reported is its position).
    #[arg(long = "secret-file", required_unless_present = "endpoint")]
    secret_files: Vec<PathBuf>,
    /// A WebhookEndpoint manifest, verified exactly as the receiver would
    /// (generic checks, public URL, handshakes), secrets from --secrets-dir.
    #[arg(long, requires = "secrets_dir", conflicts_with_all = ["provider", "secret_files"])]
    endpoint: Option<PathBuf>,
    /// Where --endpoint's secrets are, as `<dir>/<name>/<key>`.
    #[arg(long)]
    secrets_dir: Option<PathBuf>,
    /// Twilio, Square: the public URL the provider called, without query
    /// (the saved request's query is added).
    #[arg(long)]
    public_url: Option<String>,
    /// The saved raw HTTP/1.1 request (request line, headers, blank line, body).
    #[arg(long)]
    request: PathBuf,
    /// Override the preset's timestamp tolerance, in seconds.
    #[arg(long)]
    tolerance: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send(args) => send(args),
        Command::Secret(SecretCommand::Generate { format }) => generate(format),
        Command::Verify(args) => verify_request(args),
        Command::Tail(args) => tail(args),
        Command::Quarantine(command) => quarantine(command),
        Command::Replay(args) => run_async(replay(*args)),
        Command::Dlq(command) => run_async(dlq(command)),
        Command::Presets(args) => {
            print!("{}", presets::presets_table(args.markdown));
            Ok(ExitCode::SUCCESS)
        }
        Command::Ranges(RangesCommand::Fetch(args)) => fetch_ranges(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("hookwarden: {}", redact(&message));
            ExitCode::from(2)
        }
    }
}

/// How long `send` waits for connecting, TLS and the answer together.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    // The error names the file, never its content.
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn generate(format: Format) -> Result<ExitCode, String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("OS random number generator: {e}"))?;
    let text = match format {
        Format::Hex => hex::encode(key),
        Format::Base64 => BASE64.encode(key),
        Format::Whsec => format!("whsec_{}", BASE64.encode(key)),
    };
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn random_id() -> Result<String, String> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| format!("OS random number generator: {e}"))?;
    Ok(format!("hw_{}", hex::encode(id)))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("--header {text:?} is not `Name: value`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A manifest and the secrets it names, read as the receiver reads them.
struct Manifest {
    spec: hookwarden_crds::WebhookEndpointSpec,
    secrets_dir: PathBuf,
}

impl Manifest {
    fn read(path: &Path, secrets_dir: Option<&Path>) -> Result<Self, String> {
        let text = read_file(path, "manifest")?;
        let text = String::from_utf8(text)
            .map_err(|_| format!("manifest {} is not UTF-8", path.display()))?;
        let endpoint = hookwarden_crds::from_yaml(&text)
            .map_err(|e| format!("manifest {}: {e}", path.display()))?;
        Ok(Self {
            spec: endpoint.spec,
            secrets_dir: secrets_dir.map(Path::to_owned).unwrap_or_default(),
        })
    }

    fn load(
        &self,
        refs: &[hookwarden_crds::SecretKeyRef],
    ) -> Result<Vec<Secret>, hookwarden_receiver::secrets::SecretError> {
        hookwarden_receiver::secrets::load(&self.secrets_dir, refs)
    }

    /// The first secret of `refs`, for signing.
    fn first(
        &self,
        refs: &[hookwarden_crds::SecretKeyRef],
        field: &str,
    ) -> Result<Vec<u8>, String> {
        let first = refs
            .first()
            .ok_or_else(|| format!("the manifest has no {field}"))?;
        let secrets = self
            .load(std::slice::from_ref(first))
            .map_err(|e| e.to_string())?;
        secrets
            .first()
            .map(|s| s.expose().to_vec())
            .ok_or_else(|| format!("the manifest has no {field}"))
    }
}

/// `url` without its query, and the query.
fn split_query(url: &str) -> (&str, Option<&str>) {
    match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    }
}

fn send(args: SendArgs) -> Result<ExitCode, String> {
    let manifest = args
        .endpoint
        .as_deref()
        .map(|path| Manifest::read(path, args.secrets_dir.as_deref()))
        .transpose()?;
    let provider = match (&manifest, &args.provider) {
        (Some(manifest), _) => manifest.spec.provider.manifest_name(),
        (None, Some(provider)) => provider.clone(),
        (None, None) => return Err("--provider or --endpoint is required".to_owned()),
    };
    presets::parse_provider(&provider)?;
    // Before anything is read or printed: from here on no output shows them.
    let known = known_secrets(&args, manifest.as_ref());
    let secret = match (&args.secret_file, &manifest) {
        (Some(path), _) => read_file(path, "secret file")?,
        (None, Some(manifest)) if args.handshake && provider == "meta" => {
            let refs = manifest
                .spec
                .handshake
                .as_ref()
                .map(|h| h.verify_token_refs.clone())
                .unwrap_or_default();
            manifest.first(&refs, "spec.handshake.verifyTokenRefs")?
        }
        (None, Some(manifest)) if provider == "generic" => Vec::new(),
        (None, Some(manifest)) => manifest.first(&manifest.spec.secret_refs, "spec.secretRefs")?,
        (None, None) => return Err("--secret-file or --endpoint is required".to_owned()),
    };
    let body = match args.body.as_deref() {
        None => None,
        Some("-") => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read the body from standard input: {e}"))?;
            Some(body)
        }
        Some(path) => Some(read_file(Path::new(path), "body file")?),
    };
    let id = match args.delivery_id.clone() {
        Some(id) => id,
        None => random_id()?,
    };
    // What Twilio and Square sign: the public URL with the query sent.
    let (base, query) = split_query(&args.url);
    let public = match (&args.public_url, &manifest) {
        (Some(public), _) => public.clone(),
        (None, Some(manifest)) => {
            match verify::public_url::PublicUrl::from_spec(&manifest.spec)
                .map_err(|e| e.to_string())?
            {
                Some(url) => url.with_query(None),
                None => base.to_owned(),
            }
        }
        (None, None) => base.to_owned(),
    };
    let signed_url = match query {
        Some(query) => format!("{public}?{query}"),
        None => public,
    };
    let input = presets::Input {
        event: &args.event,
        id: &id,
        body,
        now: args.timestamp.unwrap_or_else(now),
        url: &signed_url,
        spec: manifest.as_ref().map(|m| &m.spec),
    };
    let mut delivery = if args.handshake {
        presets::sign_handshake(&provider, &secret, &input)?
    } else if provider == "generic" {
        let manifest = manifest.as_ref().ok_or(
            "generic signs what its manifest configures: use --endpoint FILE --secrets-dir DIR",
        )?;
        let checks = verify::generic_checks(&manifest.spec, |refs| manifest.load(refs))
            .map_err(|e| e.to_string())?;
        presets::sign_generic(&checks, &input)?
    } else {
        presets::sign(&provider, &secret, &input)?
    };
    for header in &args.headers {
        delivery.headers.push(parse_header(header)?);
    }
    let url = match &delivery.extra_query {
        Some(extra) => format!(
            "{}{}{extra}",
            args.url,
            if query.is_some() { '&' } else { '?' }
        ),
        None => args.url.clone(),
    };

    if args.print_curl {
        println!("{}", curl_command(&args, &url, &delivery, &known)?);
        return Ok(ExitCode::SUCCESS);
    }

    let expect = delivery.expect.clone();
    let runtime = runtime()?;
    let (status, answer) = runtime
        .block_on(async {
            tokio::time::timeout(
                SEND_TIMEOUT,
                post(
                    &url,
                    args.cacert.as_deref(),
                    args.insecure,
                    args.connect_to.as_deref(),
                    delivery,
                ),
            )
            .await
        })
        .map_err(|_| format!("no answer from {} within {SEND_TIMEOUT:?}", args.url))??;
    println!("{status}");
    // Through the filter: a server that echoes the request (a debugging
    // endpoint) would otherwise make `send` print the token it sent.
    match serde_json::from_slice::<serde_json::Value>(&answer) {
        Ok(json) => println!(
            "{}",
            redact(&serde_json::to_string_pretty(&json).unwrap_or_default())
        ),
        Err(_) => println!("{}", redact(&String::from_utf8_lossy(&answer))),
    }
    if let Some(expect) = expect
        && status.is_success()
        && !expect.matches(&answer)
    {
        println!("the answer is not the handshake answer {provider} expects");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A secret the delivery may carry, and the file it was read from: what
/// `--print-curl` has the shell read instead of printing it.
struct KnownSecret {
    value: Vec<u8>,
    file: PathBuf,
}

/// Every secret `send` may have signed with: `--secret-file`, and each file
/// the manifest names. Each is also added to the filter [`redact`] applies,
/// with the `user:password` of a Basic check.
fn known_secrets(args: &SendArgs, manifest: Option<&Manifest>) -> Vec<KnownSecret> {
    let mut files: Vec<PathBuf> = args.secret_file.iter().cloned().collect();
    let mut basic_user = None;
    if let Some(manifest) = manifest {
        files.extend(
            hookwarden_receiver::reload::secret_refs(&manifest.spec)
                .into_iter()
                .map(|r| manifest.secrets_dir.join(&r.name).join(&r.key)),
        );
        basic_user = manifest
            .spec
            .verification
            .as_ref()
            .and_then(|v| v.basic_auth.as_ref())
            .map(|b| b.username.clone());
    }
    let known: Vec<KnownSecret> = files
        .into_iter()
        // A file that cannot be read was not signed with.
        .filter_map(|file| {
            std::fs::read(&file)
                .ok()
                .map(|value| KnownSecret { value, file })
        })
        .filter(|k| !k.value.trim_ascii().is_empty())
        .collect();
    for secret in &known {
        register_secret(&secret.value);
        if let Some(user) = &basic_user {
            let mut pair = format!("{user}:").into_bytes();
            pair.extend_from_slice(&secret.value);
            register_secret(&pair);
        }
    }
    known
}

/// `text` with every secret this command has read replaced by
/// `[redacted]`: what it prints of answers and errors.
fn redact(text: &str) -> String {
    let redacted = hookwarden_receiver::logging::registry().redact(text.as_bytes());
    String::from_utf8_lossy(&redacted).into_owned()
}

fn register_secret(secret: &[u8]) {
    hookwarden_receiver::logging::register_secret(secret);
}

/// The curl command that sends `delivery`, in which the shell reads every
/// secret from its file: a header that holds a secret (GitLab's token, a
/// `generic` token) becomes `"$(cat FILE)"`, HTTP Basic is encoded from the
/// file by `base64`, a query parameter that is one (Meta's verify token)
/// is `--data-urlencode 'name@FILE'`. Should a secret still show in the
/// command, it is refused rather than printed.
fn curl_command(
    args: &SendArgs,
    url: &str,
    delivery: &presets::Delivery,
    known: &[KnownSecret],
) -> Result<String, String> {
    let mut parts = vec![
        "curl".to_owned(),
        "-sS".to_owned(),
        // `-X HEAD` would make curl wait for a body that never comes.
        if delivery.method == "HEAD" {
            "--head".to_owned()
        } else {
            format!("-X {}", delivery.method)
        },
    ];
    if args.insecure {
        parts.push("--insecure".to_owned());
    }
    if let Some(cacert) = &args.cacert {
        parts.push(format!(
            "--cacert {}",
            shell_quote(&cacert.display().to_string())
        ));
    }
    if let Some(connect_to) = &args.connect_to {
        // curl's form: HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT, empty = any.
        parts.push(format!(
            "--connect-to {}",
            shell_quote(&format!("::{connect_to}"))
        ));
    }
    for (name, value) in &delivery.headers {
        match basic_from_file(name, value, known) {
            Some(word) => parts.push(format!("-H {word}")),
            None => parts.push(format!(
                "-H {}",
                shell_word(&format!("{name}: {value}"), known)
            )),
        }
    }
    // A body file is sent byte for byte; an exact literal otherwise.
    match args.body.as_deref() {
        _ if delivery.method == "GET" || delivery.method == "HEAD" => {}
        // Mailgun and Adyen sign inside the body: the file is not sent as is.
        Some(path) if path != "-" && std::fs::read(path).ok().as_ref() == Some(&delivery.body) => {
            parts.push(format!("--data-binary @{}", shell_quote(path)));
        }
        _ => parts.push(format!(
            "--data-binary {}",
            shell_quote(&String::from_utf8_lossy(&delivery.body))
        )),
    }
    // A GET's parameters with a secret among them (Meta's subscription
    // handshake): curl reads and encodes it from the file.
    let secret_query = delivery.extra_query.as_deref().filter(|query| {
        delivery.method == "GET"
            && form_urlencoded::parse(query.as_bytes())
                .any(|(_, v)| known.iter().any(|k| k.value == v.as_bytes()))
    });
    match secret_query {
        Some(query) => {
            parts.push("-G".to_owned());
            for (name, value) in form_urlencoded::parse(query.as_bytes()) {
                let from_file = known.iter().find(|k| k.value == value.as_bytes());
                parts.push(format!(
                    "--data-urlencode {}",
                    match from_file {
                        Some(k) => shell_quote(&format!("{name}@{}", k.file.display())),
                        None => shell_quote(&format!("{name}={value}")),
                    }
                ));
            }
            parts.push(shell_quote(&args.url));
        }
        None => parts.push(shell_quote(url)),
    }
    let command = parts.join(" \\\n  ");
    if redact(&command) != command {
        return Err(
            "--print-curl cannot write this delivery without showing a secret; send it without --print-curl"
                .to_owned(),
        );
    }
    Ok(command)
}

/// `text` as one shell word: single-quoted, or, when it holds known
/// secrets, double-quoted with each read from its file by `$(cat FILE)`.
/// (`$(...)` drops trailing newlines, which no header value can hold.)
fn shell_word(text: &str, known: &[KnownSecret]) -> String {
    let mut rest = text.as_bytes();
    let mut word = String::new();
    let mut spliced = false;
    loop {
        // The earliest secret; of two at the same place, the longer.
        let found = known
            .iter()
            .filter_map(|k| find(rest, &k.value).map(|at| (at, k)))
            .min_by_key(|(at, k)| (*at, std::cmp::Reverse(k.value.len())));
        let Some((at, secret)) = found else {
            break;
        };
        word.push_str(&double_quote_escape(&String::from_utf8_lossy(&rest[..at])));
        word.push_str(&format!(
            "$(cat {})",
            shell_quote(&secret.file.display().to_string())
        ));
        rest = &rest[at + secret.value.len()..];
        spliced = true;
    }
    if !spliced {
        return shell_quote(text);
    }
    word.push_str(&double_quote_escape(&String::from_utf8_lossy(rest)));
    format!("\"{word}\"")
}

/// An `Authorization: Basic` header whose password is a known secret, as a
/// shell word that encodes `user:` and the file's bytes (a trailing newline
/// included) with `base64`.
fn basic_from_file(name: &str, value: &str, known: &[KnownSecret]) -> Option<String> {
    if !name.eq_ignore_ascii_case("authorization") {
        return None;
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = BASE64.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let secret = known.iter().find(|k| k.value == password)?;
    let user = String::from_utf8(user.to_vec()).ok()?;
    Some(format!(
        "\"{}: Basic $({{ printf '%s' {}; cat {}; }} | base64 | tr -d '\\n')\"",
        double_quote_escape(name),
        shell_quote(&format!("{user}:")),
        shell_quote(&secret.file.display().to_string()),
    ))
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `text` for inside a POSIX shell's double quotes.
fn double_quote_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `--insecure`: any certificate is accepted, but the handshake signature
/// is still checked with the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(cacert: Option<&Path>, insecure: bool) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as curl does.
        let _ = roots.add(cert);
    }
    if let Some(path) = cacert {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read --cacert {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--cacert {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

async fn post(
    url: &str,
    cacert: Option<&Path>,
    insecure: bool,
    connect_to: Option<&str>,
    delivery: presets::Delivery,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(format!(
                "--url {url:?}: only http:// and https:// are supported"
            ));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("--url {url:?} has no host"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());

    let mut request = Request::builder()
        .method(delivery.method)
        .uri(path)
        .header(hyper::header::HOST, authority);
    for (name, value) in &delivery.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(delivery.body)))
        .map_err(|e| format!("invalid request: {e}"))?;

    let tcp_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = match connect_to {
        Some(address) => TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address} (--connect-to): {e}"))?,
        None => TcpStream::connect((tcp_host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?,
    };
    if https {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(cacert, insecure)?));
        let name = rustls::pki_types::ServerName::try_from(tcp_host)
            .map_err(|e| format!("--url host: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, Bytes), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}

/// A saved request: method, request target, headers and body.
struct Saved {
    method: hyper::Method,
    uri: hyper::Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn parse_request(raw: &[u8]) -> Result<Saved, String> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut slots);
    let head_len = match request.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return Err("the request ends before the blank line after the headers".to_owned());
        }
        Err(e) => return Err(format!("not an HTTP/1.1 request: {e}")),
    };
    let method = request
        .method
        .unwrap_or("POST")
        .parse::<hyper::Method>()
        .map_err(|e| format!("request method: {e}"))?;
    let uri = request
        .path
        .unwrap_or("/")
        .parse::<hyper::Uri>()
        .map_err(|e| format!("request target: {e}"))?;
    let mut headers = HeaderMap::new();
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|e| format!("header {:?}: {e}", header.name))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|e| format!("header {:?}: {e}", header.name))?;
        headers.append(name, value);
    }
    let rest = raw.get(head_len..).unwrap_or_default();
    let body = match headers.get(hyper::header::CONTENT_LENGTH) {
        Some(length) => {
            let length: usize = length
                .to_str()
                .ok()
                .and_then(|l| l.trim().parse().ok())
                .ok_or("Content-Length is not a number")?;
            rest.get(..length)
                .ok_or_else(|| {
                    format!(
                        "the body is {} bytes, Content-Length says {length}",
                        rest.len()
                    )
                })?
                .to_vec()
        }
        None => rest.to_vec(),
    };
    Ok(Saved {
        method,
        uri,
        headers,
        body,
    })
}

fn verify_request(args: VerifyArgs) -> Result<ExitCode, String> {
    let public_url = args
        .public_url
        .as_deref()
        .map(verify::public_url::PublicUrl::parse)
        .transpose()
        .map_err(|e| {
            format!(
                "--public-url: {}",
                e.to_string().replace("spec.publicUrl ", "")
            )
        })?;
    let verifier = match &args.endpoint {
        Some(path) => {
            let manifest = Manifest::read(path, args.secrets_dir.as_deref())?;
            let mut spec = manifest.spec.clone();
            if let Some(tolerance) = args.tolerance {
                spec.timestamp_tolerance_seconds = Some(tolerance);
            }
            if let Some(url) = &args.public_url {
                spec.public_url = Some(url.clone());
            }
            verify::for_endpoint(&spec, |refs| manifest.load(refs)).map_err(|e| e.to_string())?
        }
        None => {
            let name = args
                .provider
                .as_deref()
                .ok_or("--provider or --endpoint is required")?;
            let provider = presets::parse_provider(name)?;
            let secrets = args
                .secret_files
                .iter()
                .map(|path| read_file(path, "secret file").map(Secret::from))
                .collect::<Result<Vec<_>, _>>()?;
            // What is printed below goes through the filter with them.
            for secret in &secrets {
                register_secret(secret.expose());
            }
            let options = verify::PresetOptions {
                public_url,
                ..verify::PresetOptions::default()
            };
            verify::for_preset(provider, secrets, args.tolerance, options).map_err(|e| match e {
                verify::VerifierError::PublicUrlRequired(_) => format!(
                    "provider {name} signs the URL it calls: give --public-url (or --endpoint)"
                ),
                other => other.to_string(),
            })?
        }
    };
    let raw = read_file(&args.request, "request")?;
    let saved = parse_request(&raw)?;
    let incoming = verify::Incoming {
        method: &saved.method,
        uri: &saved.uri,
        headers: &saved.headers,
        body: &saved.body,
    };
    // AWS SNS, PayPal, Google: the provider's key, fetched under the
    // preset's host rule, as the receiver does before checking.
    if let Some(fetching) = verifier.prefetch(&incoming) {
        let runtime = runtime()?;
        let fetched = runtime
            .block_on(async { tokio::time::timeout(verify::PREFETCH_TIMEOUT, fetching).await });
        let refused = match fetched {
            Ok(Ok(())) => None,
            Ok(Err(rejection)) => Some(rejection),
            Err(_) => Some(verify::Rejection::KeyUnavailable),
        };
        if let Some(rejection) = refused {
            println!("REFUSED: {}", rejection.code());
            println!("{}", presets::explain(rejection.code()));
            return Ok(ExitCode::FAILURE);
        }
    }
    match verifier.check(&incoming) {
        // The event and delivery id come from the request: through the
        // filter, as anything else printed.
        Ok(verify::Verdict::Deliver(verified)) => {
            println!(
                "{}",
                redact(&format!(
                    "OK (secret index {}, event {}, delivery {})",
                    verified.secret_index,
                    verified.event.as_deref().unwrap_or("-"),
                    verified.delivery_id.as_deref().unwrap_or("-"),
                ))
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(verify::Verdict::Handshake(handshake)) => {
            println!(
                "{}",
                redact(&format!(
                    "OK handshake (secret index {}); the receiver answers {}: {}",
                    handshake.verified.secret_index,
                    handshake.content_type,
                    String::from_utf8_lossy(&handshake.body),
                ))
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(rejection) => {
            println!("REFUSED: {}", rejection.code());
            println!("{}", presets::explain(rejection.code()));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn fetch_ranges(args: RangesFetchArgs) -> Result<ExitCode, String> {
    let source =
        presets::ranges::source_of(&args.source, args.service, args.region, args.json_path)?;
    let runtime = runtime()?;
    let fetcher = hookwarden_receiver::ranges::fetch::RangeFetcher::new();
    let (text, summary) = runtime.block_on(presets::ranges::fetch(
        &fetcher,
        &source,
        args.output.as_deref(),
    ))?;
    print!("{text}");
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn tail(args: TailArgs) -> Result<ExitCode, String> {
    run_async(async { tail_messages(args).await.map(|()| ExitCode::SUCCESS) })
}

/// Connects as `--nats-url` and `--nats-credentials-file` say.
async fn connect_nats(args: &NatsArgs) -> Result<async_nats::Client, String> {
    let options = match &args.nats_credentials_file {
        Some(path) => {
            let creds = String::from_utf8(read_file(path, "NATS credentials file")?)
                .map_err(|_| format!("NATS credentials file {} is not UTF-8", path.display()))?;
            // The parser's errors say which part is missing, never the content.
            async_nats::ConnectOptions::with_credentials(&creds).map_err(|e| {
                format!(
                    "NATS credentials file {} is not a .creds file: {e}",
                    path.display()
                )
            })?
        }
        None => async_nats::ConnectOptions::new(),
    };
    // The URL's credentials are passed explicitly (the client would not
    // send them), and errors show the URL without them.
    hookwarden_receiver::nats_url::connect(&args.nats_url, options)
        .await
        .map_err(|e| e.to_string())
}

async fn tail_messages(args: TailArgs) -> Result<(), String> {
    use futures::StreamExt;
    let client = connect_nats(&args.nats).await?;
    let jetstream = async_nats::jetstream::new(client.clone());
    match jetstream.stream_by_subject(args.subject.clone()).await {
        Ok(stream_name) => {
            // An ordered consumer from now on: what the stream stores, in order,
            // without acks or state left on the server.
            let stream = jetstream
                .get_stream(&stream_name)
                .await
                .map_err(|e| format!("stream {stream_name}: {e}"))?;
            let consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                    filter_subject: args.subject.clone(),
                    deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("consumer on {stream_name}: {e}"))?;
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| format!("consumer on {stream_name}: {e}"))?;
            eprintln!("tailing {} (JetStream stream {stream_name})", args.subject);
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| format!("stream {stream_name}: {e}"))?;
                print_message(&message);
            }
        }
        Err(_) => {
            let mut subscriber = client
                .subscribe(args.subject.clone())
                .await
                .map_err(|e| format!("subscribe to {}: {e}", args.subject))?;
            // `subscribe` only queues the SUB; until the server has it, a
            // message published after "tailing" would not reach us.
            client
                .flush()
                .await
                .map_err(|e| format!("subscribe to {}: {e}", args.subject))?;
            eprintln!("tailing {} (core NATS, no stream stores it)", args.subject);
            while let Some(message) = subscriber.next().await {
                print_message(&message);
            }
        }
    }
    Ok(())
}

fn quarantine(command: QuarantineCommand) -> Result<ExitCode, String> {
    run_async(async {
        quarantine_records(command)
            .await
            .map(|()| ExitCode::SUCCESS)
    })
}

/// Reads an endpoint's quarantine stream with an ordered consumer (no
/// state left on the server): the newest `--last` records, or from now on.
async fn quarantine_records(command: QuarantineCommand) -> Result<(), String> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    use futures::StreamExt;
    let (source, last) = match &command {
        QuarantineCommand::List { source, last } => (source, Some(*last)),
        QuarantineCommand::Tail { source } => (source, None),
    };
    let (stream_name, subject) = presets::quarantine::names(&source.endpoint)?;
    let client = connect_nats(&source.nats).await?;
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream(&stream_name).await.map_err(|e| {
        format!(
            "quarantine stream {stream_name}: {e} (is spec.quarantine set on {}?)",
            source.endpoint
        )
    })?;
    let state = stream
        .info()
        .await
        .map_err(|e| format!("quarantine stream {stream_name}: {e}"))?
        .state
        .clone();
    let deliver_policy = match last {
        Some(_) if state.messages == 0 => return Ok(()),
        Some(last) => DeliverPolicy::ByStartSequence {
            start_sequence: state
                .last_sequence
                .saturating_sub(last - 1)
                .max(state.first_sequence),
        },
        None => DeliverPolicy::New,
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subject,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("consumer on {stream_name}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("consumer on {stream_name}: {e}"))?;
    if last.is_none() {
        eprintln!(
            "tailing the quarantine of {} (stream {stream_name})",
            source.endpoint
        );
    }
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| format!("stream {stream_name}: {e}"))?;
        print_record(&message.payload, source.json);
        // Listing ends at the record that was newest when it began, or
        // when nothing is left (records may expire meanwhile).
        let (sequence, pending) = message
            .info()
            .map(|info| (info.stream_sequence, info.pending))
            .unwrap_or((u64::MAX, 0));
        if last.is_some() && (sequence >= state.last_sequence || pending == 0) {
            break;
        }
    }
    Ok(())
}

fn run_async(
    command: impl std::future::Future<Output = Result<ExitCode, String>>,
) -> Result<ExitCode, String> {
    runtime()?.block_on(command)
}

/// The one runtime of a command: the CLI does one thing at a time.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// Prints `line` through the secret filter (whatever a destination
/// answered may echo what it was sent).
fn print_line(line: String) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the output, not with a panic.
    let _ = writeln!(out, "{}", redact(&line));
    let _ = out.flush();
}

/// The subscription's plan, its dead-letter or source stream, and NATS.
async fn open_subscription(
    source: &SubscriptionArgs,
) -> Result<
    (
        hookwarden_crds::WebhookSubscription,
        hookwarden_receiver::forward::Plan,
        async_nats::jetstream::Context,
    ),
    String,
> {
    let (subscription, plan) = hookwarden_receiver::forward::app::load_plan(
        &source.subscription,
        source.endpoint.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let client = connect_nats(&source.nats).await?;
    Ok((subscription, plan, async_nats::jetstream::new(client)))
}

/// The forwarder's destination for the subscription (its signing secret and
/// CA from `secrets_dir`), or for `to` (checked by the caller).
fn replay_destination(
    subscription: &hookwarden_crds::WebhookSubscription,
    plan: &hookwarden_receiver::forward::Plan,
    secrets_dir: &Path,
    to: Option<&str>,
) -> Result<hookwarden_receiver::forward::delivery::Destination, String> {
    hookwarden_receiver::forward::app::destination(subscription, plan, secrets_dir, to)
        .map_err(|e| e.to_string())
}

async fn replay(args: ReplayArgs) -> Result<ExitCode, String> {
    use presets::replay::{Selection, Sending, parse_time};
    let (subscription, plan, jetstream) = open_subscription(&args.source).await?;
    let now = jiff::Timestamp::now();
    let event_types = args
        .event_types
        .iter()
        .map(|t| {
            plan.event_type_filter(t)
                .map_err(|e| format!("--event-type: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let selection = Selection {
        from_seq: args.from_seq,
        to_seq: args.to_seq,
        since: args
            .since
            .as_deref()
            .map(|t| parse_time(t, now).map_err(|e| format!("--since: {e}")))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time(t, now).map_err(|e| format!("--until: {e}")))
            .transpose()?,
        event_types,
        delivery_ids: args.delivery_ids.clone(),
        limit: args.limit,
    };
    if let Some(url) = &args.to {
        // Checked in a dry run too: it says what a real run would do.
        hookwarden_receiver::forward::check_destination_url(url).map_err(|e| {
            format!(
                "--to: {}",
                e.to_string().replace("spec.destination.url ", "")
            )
        })?;
    }
    let destination = match (&args.secrets_dir, args.dry_run) {
        (Some(dir), false) => Some(replay_destination(
            &subscription,
            &plan,
            dir,
            args.to.as_deref(),
        )?),
        _ => None,
    };
    let filter = plan
        .filter
        .as_deref()
        .map(hookwarden_receiver::forward::filter::Filter::compile)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut stream = jetstream
        .get_stream(&plan.stream)
        .await
        .map_err(|e| format!("the subscription's stream {}: {e}", plan.stream))?;
    let stop = presets::replay::interrupt_on_ctrl_c();
    let sending = Sending {
        plan: &plan,
        destination: destination.as_ref(),
        filter: filter.as_ref(),
        stop: Some(&stop),
    };
    let summary =
        presets::replay::replay(&mut stream, &sending, &selection, &mut print_line).await?;
    for line in summary.lines("replay", args.limit, destination.is_none()) {
        print_line(line);
    }
    Ok(if summary.interrupted_at.is_some() {
        ExitCode::from(presets::replay::INTERRUPTED_EXIT_CODE)
    } else if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn dlq(command: DlqCommand) -> Result<ExitCode, String> {
    match command {
        DlqCommand::List {
            source,
            json,
            limit,
        } => {
            let (_, plan, jetstream) = open_subscription(&source).await?;
            let Some(mut stream) = dead_letter_stream(&jetstream, &plan).await? else {
                return Ok(ExitCode::SUCCESS);
            };
            let scanned = presets::replay::dead_letters(&mut stream, &plan, limit).await?;
            for candidate in &scanned.kept {
                print_line(if json {
                    presets::replay::dead_letter_json(candidate)
                } else {
                    presets::replay::dead_letter_line(candidate)
                });
            }
            if scanned.limited {
                eprintln!("(stopped at --limit {limit}: there are more dead letters)");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Redrive(args) => {
            let (subscription, plan, jetstream) = open_subscription(&args.source).await?;
            let destination = match (&args.secrets_dir, args.dry_run) {
                (Some(dir), false) => Some(replay_destination(&subscription, &plan, dir, None)?),
                _ => None,
            };
            let Some(mut stream) = dead_letter_stream(&jetstream, &plan).await? else {
                return Ok(if args.sequences.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            };
            let chosen = if args.all {
                presets::replay::dead_letters(&mut stream, &plan, args.limit)
                    .await?
                    .kept
            } else {
                presets::replay::dead_letters_by_sequence(&stream, &plan, &args.sequences).await?
            };
            let summary = presets::replay::redrive(
                &mut stream,
                &plan,
                destination.as_ref(),
                &chosen,
                &mut print_line,
            )
            .await;
            for line in summary.lines("redrive", args.limit, destination.is_none()) {
                print_line(line);
            }
            Ok(if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The subscription's dead-letter stream; `None` (said on stderr) when it
/// does not exist yet: no forwarder ran, so there are no dead letters.
async fn dead_letter_stream(
    jetstream: &async_nats::jetstream::Context,
    plan: &hookwarden_receiver::forward::Plan,
) -> Result<Option<async_nats::jetstream::stream::Stream>, String> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    match jetstream.get_stream(&plan.dead_letter.stream).await {
        Ok(stream) => Ok(Some(stream)),
        Err(err)
            if matches!(err.kind(), GetStreamErrorKind::JetStream(js)
                if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            eprintln!(
                "no dead-letter stream {} yet: {} has no dead letters",
                plan.dead_letter.stream, plan.subscription
            );
            Ok(None)
        }
        Err(err) => Err(format!(
            "the dead-letter stream {}: {err}",
            plan.dead_letter.stream
        )),
    }
}

fn print_record(payload: &[u8], json: bool) {
    use std::io::Write;
    let text = if json {
        String::from_utf8_lossy(payload).into_owned()
    } else {
        presets::quarantine::line(payload)
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the output, not with a panic.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn print_message(message: &async_nats::Message) {
    use std::io::Write;
    let mut text = format!("--- {}\n", message.subject);
    if let Some(headers) = &message.headers {
        let mut lines: Vec<String> = headers
            .iter()
            .filter(|(name, _)| {
                name.to_string()
                    .to_ascii_lowercase()
                    .starts_with("hookwarden-")
            })
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| format!("{name}: {}", value.as_str()))
            })
            .collect();
        lines.sort();
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    match serde_json::from_slice::<serde_json::Value>(&message.payload) {
        Ok(json) => text.push_str(&serde_json::to_string_pretty(&json).unwrap_or_default()),
        Err(_) => text.push_str(&String::from_utf8_lossy(&message.payload)),
    }
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the output, not with a panic.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
