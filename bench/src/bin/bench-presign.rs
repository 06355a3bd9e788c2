//! `bench-presign`: writes the pre-signed request files `bench/run.sh`
//! replays with wrk and vegeta (formats in the `hookwarden_bench` docs).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use hookwarden_bench::{PresignError, write_vegeta, write_wrk};

#[derive(Debug, Parser)]
#[command(about = "Write pre-signed GitHub deliveries (1 KiB bodies) for wrk or vegeta")]
struct Args {
    /// The webhook secret (raw bytes, as the receiver reads it).
    #[arg(long)]
    secret_file: PathBuf,
    /// Delivery ids are `<prefix>-<12-digit number>`.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// How many distinct deliveries to write.
    #[arg(long)]
    count: u64,
    #[command(subcommand)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum Format {
    /// A body template and one tab-separated line per request (for wrk).
    Wrk {
        #[arg(long)]
        template_out: PathBuf,
        #[arg(long)]
        lines_out: PathBuf,
    },
    /// vegeta JSON targets, one per line.
    Vegeta {
        #[arg(long)]
        url: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot read the secret file {}: {source}", path.display())]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Presign(#[from] PresignError),
}

fn create(path: &Path) -> Result<BufWriter<File>, Error> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|source| Error::Create {
            path: path.to_owned(),
            source,
        })
}

fn run(args: Args) -> Result<(), Error> {
    let secret = std::fs::read(&args.secret_file).map_err(|source| Error::Secret {
        path: args.secret_file.clone(),
        source,
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    match args.format {
        Format::Wrk {
            template_out,
            lines_out,
        } => {
            let mut template = create(&template_out)?;
            let mut lines = create(&lines_out)?;
            write_wrk(
                &secret,
                &args.prefix,
                args.count,
                now,
                &mut template,
                &mut lines,
            )?;
            for (out, path) in [(template, template_out), (lines, lines_out)] {
                out.into_inner().map_err(|e| Error::Create {
                    path,
                    source: e.into_error(),
                })?;
            }
        }
        Format::Vegeta { url, out } => {
            let mut file = create(&out)?;
            write_vegeta(&secret, &args.prefix, args.count, now, &url, &mut file)?;
            file.into_inner().map_err(|e| Error::Create {
                path: out,
                source: e.into_error(),
            })?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-presign: error: {err}");
            ExitCode::FAILURE
        }
    }
}
