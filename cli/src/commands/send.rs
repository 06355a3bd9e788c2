//! `hookwarden send`: a delivery signed exactly as the provider signs it,
//! sent (`http`) or printed as a curl command (`curl`).

mod curl;
mod http;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hookwarden_cli as presets;
use hookwarden_receiver::verify::public_url::{PublicUrl, PublicUrlError};
use hookwarden_receiver::verify::{self, VerifierError};

use self::curl::{CurlError, CurlOptions, KnownSecret};
use self::http::PostError;
use super::files::{ReadError, read_file};
use super::manifest::{Manifest, ManifestError};
use super::output::{redact, register_secret};
use super::secret::{RandomError, random};
use super::{RuntimeError, runtime};

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The provider preset (github, stripe, standard-webhooks, ...); with
    /// --endpoint, the manifest's.
    #[arg(long, required_unless_present = "endpoint")]
    provider: Option<String>,
    /// The file holding the signing secret, used byte for byte (discord,
    /// sendgrid: the private key; a Meta --handshake: the verify token).
    /// With --endpoint, default: the first secretRefs entry in --secrets-dir.
    #[arg(long, required_unless_present = "endpoint")]
    secret_file: Option<PathBuf>,
    /// The RSA private key (PKCS#8 PEM) that signs the Microsoft Entra
    /// token of an endpoint that takes a shared secret too: azure-event-grid
    /// with secretRefs and azure.entra, microsoft-graph with
    /// graph.validationTokens. Its JWK is the tenant's under the key id
    /// `hookwarden-entra`.
    #[arg(long)]
    token_key: Option<PathBuf>,
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

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("--provider or --endpoint is required")]
    NoProvider,
    #[error("--secret-file or --endpoint is required")]
    NoSecret,
    #[error("generic signs what its manifest configures: use --endpoint FILE --secrets-dir DIR")]
    GenericWithoutManifest,
    /// An unknown preset, one without a handshake, or a secret it cannot
    /// sign with (the library's message names the preset).
    #[error("{0}")]
    Preset(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot read the body from standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    PublicUrl(#[from] PublicUrlError),
    /// The manifest's `generic` checks cannot be built.
    #[error(transparent)]
    Checks(#[from] VerifierError),
    #[error("--header {0:?} is not `Name: value`")]
    Header(String),
    #[error(transparent)]
    Curl(#[from] CurlError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("no answer from {url} within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error(transparent)]
    Post(#[from] PostError),
}

/// How long `send` waits for connecting, TLS and the answer together.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(args: SendArgs) -> Result<ExitCode, SendError> {
    let manifest = args
        .endpoint
        .as_deref()
        .map(|path| Manifest::read(path, args.secrets_dir.as_deref()))
        .transpose()?;
    let provider = match (&manifest, &args.provider) {
        (Some(manifest), _) => manifest.spec.provider.manifest_name(),
        (None, Some(provider)) => provider.clone(),
        (None, None) => return Err(SendError::NoProvider),
    };
    presets::parse_provider(&provider).map_err(SendError::Preset)?;
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
        (None, Some(_)) if provider == "generic" => Vec::new(),
        (None, Some(manifest)) => manifest.first(&manifest.spec.secret_refs, "spec.secretRefs")?,
        (None, None) => return Err(SendError::NoSecret),
    };
    let token_key = args
        .token_key
        .as_deref()
        .map(|path| read_file(path, "token key file"))
        .transpose()?;
    let body = match args.body.as_deref() {
        None => None,
        Some("-") => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(SendError::Stdin)?;
            Some(body)
        }
        Some(path) => Some(read_file(Path::new(path), "body file")?),
    };
    let id = match args.delivery_id.clone() {
        Some(id) => id,
        None => format!("hw_{}", hex::encode(random::<16>()?)),
    };
    // What Twilio and Square sign: the public URL with the query sent.
    let (base, query) = split_query(&args.url);
    let public = match (&args.public_url, &manifest) {
        (Some(public), _) => public.clone(),
        (None, Some(manifest)) => match PublicUrl::from_spec(&manifest.spec)? {
            Some(url) => url.with_query(None),
            None => base.to_owned(),
        },
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
        now: args
            .timestamp
            .unwrap_or_else(|| jiff::Timestamp::now().as_second()),
        url: &signed_url,
        spec: manifest.as_ref().map(|m| &m.spec),
        token_key: token_key.as_deref(),
    };
    let mut delivery = if args.handshake {
        presets::sign_handshake(&provider, &secret, &input)
    } else if provider == "generic" {
        let manifest = manifest.as_ref().ok_or(SendError::GenericWithoutManifest)?;
        let checks = verify::generic_checks(&manifest.spec, |refs| manifest.load(refs))?;
        presets::sign_generic(&checks, &input)
    } else {
        presets::sign(&provider, &secret, &input)
    }
    .map_err(SendError::Preset)?;
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
        let options = CurlOptions {
            url: &args.url,
            insecure: args.insecure,
            cacert: args.cacert.as_deref(),
            connect_to: args.connect_to.as_deref(),
            body_file: args.body.as_deref().filter(|path| *path != "-"),
        };
        println!("{}", curl::command(&options, &url, &delivery, &known)?);
        return Ok(ExitCode::SUCCESS);
    }

    let expect = delivery.expect.clone();
    let target = http::Target {
        url: &url,
        cacert: args.cacert.as_deref(),
        insecure: args.insecure,
        connect_to: args.connect_to.as_deref(),
    };
    let (status, answer) = runtime()?
        .block_on(async { tokio::time::timeout(SEND_TIMEOUT, http::post(&target, delivery)).await })
        .map_err(|_| SendError::Timeout {
            url: args.url.clone(),
            after: SEND_TIMEOUT,
        })??;
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

fn parse_header(text: &str) -> Result<(String, String), SendError> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| SendError::Header(text.to_owned()))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// `url` without its query, and the query.
fn split_query(url: &str) -> (&str, Option<&str>) {
    match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    }
}

/// Every secret `send` may have signed with: `--secret-file`, and each file
/// the manifest names. Each is also added to the filter [`redact`] applies,
/// with the `user:password` of a Basic check.
fn known_secrets(args: &SendArgs, manifest: Option<&Manifest>) -> Vec<KnownSecret> {
    let mut files: Vec<PathBuf> = args
        .secret_file
        .iter()
        .chain(&args.token_key)
        .cloned()
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_split_at_its_first_colon_and_trimmed() {
        let (name, value) = parse_header(" X-Trace :  a:b ").expect("a header");
        assert_eq!((name.as_str(), value.as_str()), ("X-Trace", "a:b"));
        assert!(matches!(
            parse_header("no colon"),
            Err(SendError::Header(text)) if text == "no colon"
        ));
    }

    #[test]
    fn the_query_is_split_from_the_url() {
        assert_eq!(
            split_query("https://h/p?a=1&b=2"),
            ("https://h/p", Some("a=1&b=2"))
        );
        assert_eq!(split_query("https://h/p"), ("https://h/p", None));
    }
}
