//! `raftkvctl`: put/get/del/status against a cluster, `cluster start N` to run a local one,
//! `bench` to measure it. All logic lives in `raftkv::ctl`; this file only parses the command
//! line, starts the tokio runtime and turns an error into a message and exit code 1.

use std::process::ExitCode;

use clap::Parser;
use raftkv::ctl::{run, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}
