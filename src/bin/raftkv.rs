//! `raftkv`: one member of an etcd-compatible cluster, started with etcd's flags.
//!
//! parse flags -> set up logging -> run until SIGINT/SIGTERM. Everything else lives in
//! `raftkv::api` (flags in `config.rs`, the process life in `run.rs`) so it can be tested.

use std::process::ExitCode;

use raftkv::api::run::{run, stop_signal};
use raftkv::api::{logging, ConfigError, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::parse_from(std::env::args()) {
        Ok(settings) => settings,
        Err(ConfigError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("raftkv: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&settings.log_level);
    match run(settings, stop_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "raftkv stopped with an error");
            ExitCode::FAILURE
        }
    }
}
