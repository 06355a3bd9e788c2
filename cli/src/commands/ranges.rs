//! `hookwarden ranges fetch`: one provider's published source ranges, as
//! the file a standalone receiver reads from `--source-ranges-dir`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::RuntimeError;

#[derive(Debug, Subcommand)]
pub enum RangesCommand {
    /// Fetch one published list (as `spec.allowedSources` names it) and
    /// write its ranges, one CIDR per line: the file a standalone receiver
    /// reads from `--source-ranges-dir`. The same strict parsing and
    /// plausibility rules as the operator's apply; an existing output file
    /// is the previous list (a list that lost more than half is refused).
    Fetch(RangesFetchArgs),
}

#[derive(Debug, clap::Args)]
pub struct RangesFetchArgs {
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

#[derive(Debug, thiserror::Error)]
pub enum RangesError {
    /// Which list: an unknown provider, a bad URL or JSON path (the
    /// library's message names the argument).
    #[error("{0}")]
    Source(String),
    /// Fetching, parsing or writing the list (the library's message
    /// names the list and the rule it broke).
    #[error("{0}")]
    Fetch(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub fn run(command: RangesCommand) -> Result<ExitCode, RangesError> {
    let RangesCommand::Fetch(args) = command;
    let source =
        hookwarden_cli::ranges::source_of(&args.source, args.service, args.region, args.json_path)
            .map_err(RangesError::Source)?;
    let fetcher = hookwarden_receiver::ranges::fetch::RangeFetcher::new();
    let (text, summary) = super::runtime()?
        .block_on(hookwarden_cli::ranges::fetch(
            &fetcher,
            &source,
            args.output.as_deref(),
        ))
        .map_err(RangesError::Fetch)?;
    print!("{text}");
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}
