//! Log output for the binary: `tracing` events to stderr through tracing-subscriber, at
//! etcd's `--log-level` names.
//!
//! raftkv's own modules log at the chosen level; the libraries under us (hyper, h2, tonic,
//! sled) only at warn and above unless `RUST_LOG` says otherwise, because their debug
//! output is per frame and would drown ours.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The tracing level for one of etcd's log levels (`panic` and `fatal` have no tracing
/// equivalent: both mean errors only).
pub fn tracing_level(etcd_level: &str) -> &'static str {
    match etcd_level {
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        _ => "error",
    }
}

/// Install the global subscriber. `RUST_LOG`, when set, overrides `--log-level`. Call once,
/// before anything logs.
pub fn init(etcd_level: &str) {
    let level = tracing_level(etcd_level);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,raftkv={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
