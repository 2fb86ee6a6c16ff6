//! `raftkvctl`: the command-line companion of the `raftkv` server.
//!
//! - `put`, `get`, `del`, `status` talk to any etcd-v3-compatible endpoint (raftkv or etcd);
//! - `cluster start N` runs a local N-member cluster in the foreground, for students;
//! - `bench put|range|txn|watch` measures throughput and latency percentiles;
//! - `snapshot status|restore|verify` work offline on snapshot files (etcdutl's job).
//!
//! This module only uses the public gRPC API (`crate::proto` clients): it must never reach
//! into a running server's internals, so whatever it shows about raftkv, it shows the same
//! way about real etcd. The one exception is `snapshot`, which works offline on files and
//! data dirs through `crate::server`'s restore functions (as etcdutl uses etcd's packages). The binary `src/bin/raftkvctl.rs` parses [`Cli`] and calls [`run`].

pub mod args;
pub mod bench;
pub mod bench_watch;
pub mod client;
pub mod cluster;
pub mod error;
pub mod kv;
pub mod report;
pub mod snapshot;
pub mod snapshot_save;
pub mod status;
pub mod supervisor;

pub use args::{Cli, Command};
pub use error::CtlError;

use args::{ClusterCommand, DebugCommand};

/// Runs one `raftkvctl` command, printing its output to stdout.
pub async fn run(cli: Cli) -> Result<(), CtlError> {
    let (dial, request) = (cli.dial_timeout, cli.command_timeout);
    let endpoints = &cli.endpoints;
    match &cli.command {
        Command::Put { key, value } => {
            let (endpoint, channel) = client::connect_any(endpoints, dial, request).await?;
            print!("{}", kv::put(channel, &endpoint, key, value).await?);
        }
        Command::Get {
            key,
            prefix,
            rev,
            long,
        } => {
            let (endpoint, channel) = client::connect_any(endpoints, dial, request).await?;
            let response = kv::get(channel, &endpoint, key, *prefix, *rev).await?;
            print!("{}", kv::format_range(&response, *long));
        }
        Command::Del { key, prefix } => {
            let (endpoint, channel) = client::connect_any(endpoints, dial, request).await?;
            print!("{}", kv::del(channel, &endpoint, key, *prefix).await?);
        }
        Command::Status => {
            let results = status::status_all(endpoints, dial, request).await;
            print!("{}", status::format_table(endpoints, &results));
            let failed = results.iter().filter(|r| r.is_err()).count();
            if failed > 0 {
                return Err(CtlError::StatusIncomplete {
                    failed,
                    total: results.len(),
                });
            }
        }
        Command::Cluster(ClusterCommand::Start(args)) => supervisor::run(args).await?,
        Command::Bench(args) => print!("{}", bench::run(args, endpoints, dial, request).await?),
        Command::Snapshot(command) => snapshot::run(command, endpoints, dial).await?,
        Command::Debug(DebugCommand::RotValue { data_dir, key }) => {
            let changed = crate::server::rot_value(data_dir, key.as_bytes())
                .map_err(|e| CtlError::Debug(e.to_string()))?;
            println!(
                "rotted {changed} stored version(s) of {key:?} in {}",
                data_dir.display()
            );
        }
    }
    Ok(())
}
