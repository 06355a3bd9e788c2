//! `hookwarden verify`: a saved raw HTTP/1.1 request checked with a preset,
//! or exactly as the receiver would check it for a manifest.

mod saved_request;

use std::path::PathBuf;
use std::process::ExitCode;

use hookwarden_receiver::secrets::Secret;
use hookwarden_receiver::verify::public_url::{PublicUrl, PublicUrlError};
use hookwarden_receiver::verify::{self, VerifierError};

use self::saved_request::{SavedRequest, SavedRequestError};
use super::files::{ReadError, read_file};
use super::manifest::{Manifest, ManifestError};
use super::output::{redact, register_secret};
use super::{RuntimeError, runtime};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
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

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("--provider or --endpoint is required")]
    NoProvider,
    /// An unknown preset (the library's message lists the presets).
    #[error("{0}")]
    Preset(String),
    #[error("--public-url: {}", .0.to_string().replace("spec.publicUrl ", ""))]
    PublicUrl(#[source] PublicUrlError),
    #[error("provider {provider} signs the URL it calls: give --public-url (or --endpoint)")]
    PublicUrlRequired { provider: String },
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Request(#[from] SavedRequestError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub fn run(args: VerifyArgs) -> Result<ExitCode, VerifyError> {
    let public_url = args
        .public_url
        .as_deref()
        .map(PublicUrl::parse)
        .transpose()
        .map_err(VerifyError::PublicUrl)?;
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
            verify::for_endpoint(&spec, |refs| manifest.load(refs))?
        }
        None => {
            let name = args.provider.as_deref().ok_or(VerifyError::NoProvider)?;
            let provider = hookwarden_cli::parse_provider(name).map_err(VerifyError::Preset)?;
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
                VerifierError::PublicUrlRequired(_) => VerifyError::PublicUrlRequired {
                    provider: name.to_owned(),
                },
                other => other.into(),
            })?
        }
    };
    let raw = read_file(&args.request, "request")?;
    let saved = SavedRequest::parse(&raw)?;
    let incoming = verify::Incoming {
        method: &saved.method,
        uri: &saved.uri,
        headers: &saved.headers,
        body: &saved.body,
    };
    // AWS SNS, PayPal, Google: the provider's key, fetched under the
    // preset's host rule, as the receiver does before checking.
    if let Some(fetching) = verifier.prefetch(&incoming) {
        let fetched = runtime()?
            .block_on(async { tokio::time::timeout(verify::PREFETCH_TIMEOUT, fetching).await });
        let refused = match fetched {
            Ok(Ok(())) => None,
            Ok(Err(rejection)) => Some(rejection),
            Err(_) => Some(verify::Rejection::KeyUnavailable),
        };
        if let Some(rejection) = refused {
            return Ok(refuse(&rejection));
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
        Err(rejection) => Ok(refuse(&rejection)),
    }
}

/// Says why the request was refused: its reason code and what it means.
fn refuse(rejection: &verify::Rejection) -> ExitCode {
    println!("REFUSED: {}", rejection.code());
    println!("{}", hookwarden_cli::explain(rejection.code()));
    ExitCode::FAILURE
}
