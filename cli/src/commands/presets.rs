//! `hookwarden presets`: the provider presets of the registry.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PresetsArgs {
    /// Print the Markdown table of docs/providers.md.
    #[arg(long)]
    markdown: bool,
}

pub fn run(args: PresetsArgs) -> ExitCode {
    print!("{}", hookwarden_cli::presets_table(args.markdown));
    ExitCode::SUCCESS
}
