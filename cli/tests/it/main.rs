//! The integration tests of `hookwarden-cli`: one test binary (one link of
//! the crate and its dependencies), a module per subject. Each test runs the
//! built `hookwarden` binary against real servers (nats-server, a receiver
//! assembled from its manifest, HTTP destinations on loopback).

mod cli;
mod fetched;
mod nats_auth;
mod no_secrets;
mod presets;
mod quarantine;
mod ranges;
mod replay;
mod send;

use std::path::Path;
use std::process::Output;

/// Runs the built `hookwarden` with `args` (off the runtime's threads) and
/// returns what it printed and its status.
async fn hookwarden(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookwarden"))
            .args(&args)
            .output()
            .expect("run hookwarden")
    })
    .await
    .expect("join")
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
