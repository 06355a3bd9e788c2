//! `hookwarden secret generate`: 32 random bytes from the OS RNG.

use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print 32 random bytes from the OS RNG.
    Generate {
        /// The encoding.
        #[arg(long, value_enum, default_value_t = Format::Hex)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// 64 lowercase hex digits.
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// `whsec_<base64>` (Standard Webhooks, Svix, GitLab signing tokens).
    Whsec,
}

/// The OS random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("OS random number generator: {0}")]
pub struct RandomError(getrandom::Error);

/// `N` bytes from the OS random number generator.
pub fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(bytes)
}

pub fn run(command: SecretCommand) -> Result<ExitCode, RandomError> {
    let SecretCommand::Generate { format } = command;
    let key = random::<32>()?;
    let text = match format {
        Format::Hex => hex::encode(key),
        Format::Base64 => BASE64.encode(key),
        Format::Whsec => format!("whsec_{}", BASE64.encode(key)),
    };
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
