//! `raftkvctl`'s command line: subcommands and flags, parsed by clap.
//!
//! This file only declares what a user can type and the defaults; it must not connect, spawn
//! or print. The binary (`src/bin/raftkvctl.rs`) parses a [`Cli`] and hands it to
//! [`crate::ctl::run`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// raftkvctl: talk to a raftkv (or etcd) cluster, run a local one, and measure it.
#[derive(Debug, Parser)]
#[command(name = "raftkvctl", version, about)]
pub struct Cli {
    /// Client endpoints (host:port or http://host:port), comma-separated.
    #[arg(
        long,
        global = true,
        env = "RAFTKVCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,

    /// How long to wait for a connection to one endpoint, e.g. "2s" or "500ms".
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub dial_timeout: Duration,

    /// How long one request may take before it fails, e.g. "5s".
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub command_timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store VALUE under KEY.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read KEY (or every key starting with KEY, with --prefix).
    Get {
        /// The key, or the prefix with --prefix.
        key: String,
        /// Read every key that starts with KEY.
        #[arg(long)]
        prefix: bool,
        /// Read at this revision (0 = the newest).
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Also print each key's create/mod revision and version.
        #[arg(long, short)]
        long: bool,
    },
    /// Delete KEY (or every key starting with KEY, with --prefix).
    Del {
        /// The key, or the prefix with --prefix.
        key: String,
        /// Delete every key that starts with KEY.
        #[arg(long)]
        prefix: bool,
    },
    /// Print each endpoint's member id, leader, revision, term, db size and version.
    Status,
    /// Run a local cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Measure throughput and latency.
    Bench(BenchArgs),
    /// Snapshot files: save (from a member), status, restore, verify (offline).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Rehearsal tools that damage a stopped member on purpose.
    #[command(subcommand)]
    Debug(DebugCommand),
}

/// `raftkvctl snapshot ...` (etcdctl's `save` and etcdutl's offline commands, for raftkv's
/// snapshot format).
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a snapshot from one member (--endpoints) into FILE, with progress lines.
    Save {
        /// Where to write the snapshot (written as FILE.part, renamed when complete).
        file: PathBuf,
    },
    /// Check a snapshot file and print its hash, revision, key count and size.
    Status {
        /// The snapshot file.
        file: PathBuf,
        /// Output format: simple, table or json (as etcdctl).
        #[arg(long = "write-out", short = 'w', default_value = "simple")]
        write_out: String,
    },
    /// Build the data dir of a member of a NEW cluster from a snapshot file.
    Restore(SnapshotRestoreArgs),
    /// Rehearse a restore in a temporary dir, reopen it and check the hashes.
    Verify {
        /// The snapshot file.
        file: PathBuf,
    },
}

/// `raftkvctl debug ...`: for drills only.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Flip bits in every stored version of KEY's value in a STOPPED member's data dir, with
    /// no new revision (simulated bit rot, to rehearse the corruption checks).
    RotValue {
        /// The member's `--data-dir` (the member must be stopped).
        #[arg(long)]
        data_dir: PathBuf,
        /// The key whose values rot.
        key: String,
    },
}

/// `raftkvctl snapshot restore FILE` with etcdutl's flags and defaults.
#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// Human-readable name of this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory (must not exist); default `<name>.raftkv`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Initial cluster configuration for restore bootstrap.
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the cluster during restore bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Ignore the snapshot's trailing SHA-256 (structure is still checked).
    #[arg(long)]
    pub skip_hash_check: bool,
}

/// `raftkvctl cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start N members (1, 3 or 5) in the foreground; Ctrl-C stops them all.
    Start(ClusterStartArgs),
}

/// `raftkvctl cluster start N`.
#[derive(Debug, Args)]
pub struct ClusterStartArgs {
    /// Number of members: 1, 3 or 5.
    #[arg(value_parser = parse_member_count)]
    pub members: usize,

    /// The server binary (default: `raftkv` next to raftkvctl). `$(which etcd)` works too.
    #[arg(long = "bin")]
    pub bin: Option<PathBuf>,

    /// Parent directory of the members' data dirs (`<data-dir>/m1`, ...).
    #[arg(long, default_value = "./cluster.raftkv")]
    pub data_dir: PathBuf,

    /// Use client port BASE + 2i and peer port BASE + 2i + 1 for member i (0-based) instead
    /// of etcd's Procfile ports (2379/2380, 22379/22380, 32379/32380, ...).
    #[arg(long)]
    pub base_port: Option<u16>,

    /// The --initial-cluster-token given to every member.
    #[arg(long, default_value = "raftkv-cluster")]
    pub initial_cluster_token: String,

    /// How long members get to stop after SIGTERM before they are killed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub stop_timeout: Duration,
}

/// `raftkvctl bench ...`: the workload and its shape.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to send.
    #[command(subcommand)]
    pub workload: Workload,

    /// Concurrent clients (each has one request in flight; for `watch`, the watchers).
    #[arg(long, global = true, default_value_t = 100)]
    pub clients: usize,

    /// gRPC connections the clients share (round-robin).
    #[arg(long, global = true, default_value_t = 10)]
    pub conns: usize,

    /// Total requests over all clients.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub total: u64,

    /// Key size in bytes (keys are zero-padded decimal numbers).
    #[arg(long, global = true, default_value_t = 8)]
    pub key_size: usize,

    /// Value size in bytes.
    #[arg(long, global = true, default_value_t = 256)]
    pub val_size: usize,

    /// Keys are drawn uniformly from this many distinct keys.
    #[arg(long, global = true, default_value_t = 100_000)]
    pub key_space: u64,

    /// Seed for the key choice (printed, so a run can be repeated).
    #[arg(long, global = true, env = "SEED")]
    pub seed: Option<u64>,
}

/// The request a benchmark sends.
#[derive(Debug, Clone, Subcommand)]
pub enum Workload {
    /// Put a random key.
    Put,
    /// Range (get) a random key.
    Range {
        /// l = linearizable (a ReadIndex round), s = serializable (local read).
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
    },
    /// Txn: if mod_revision(key) == the last one this client saw (0 at first) then put it,
    /// else read its current mod_revision.
    Txn,
    /// Watchers (one stream per client) on the key space while writers put `--total` keys;
    /// measures put -> event delivery latency.
    Watch {
        /// Concurrent writers putting the keys.
        #[arg(long, default_value_t = 10)]
        writers: usize,
    },
}

/// Read consistency of `bench range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

/// Parses "250ms", "2s", "1m" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1000)
    };
    let count: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 2s or 1m"))?;
    Ok(Duration::from_millis(count * unit_ms))
}

fn parse_member_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ (1 | 3 | 5)) => Ok(n),
        _ => Err(format!("{text:?}: a local cluster has 1, 3 or 5 members")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn bench_options_go_before_or_after_the_workload() {
        use clap::Parser;
        let total = |args: &[&str]| match Cli::try_parse_from(args).expect("parses").command {
            Command::Bench(b) => (b.total, b.clients),
            other => panic!("not a bench: {other:?}"),
        };
        let before = total(&[
            "raftkvctl",
            "bench",
            "--total",
            "7",
            "--clients",
            "3",
            "put",
        ]);
        let after = total(&[
            "raftkvctl",
            "bench",
            "put",
            "--total",
            "7",
            "--clients",
            "3",
        ]);
        assert_eq!(before, (7, 3));
        assert_eq!(after, before);
    }

    #[test]
    fn cluster_sizes_are_odd_and_small() {
        assert_eq!(parse_member_count("3"), Ok(3));
        assert!(parse_member_count("2").is_err());
        assert!(parse_member_count("7").is_err());
    }

    #[test]
    fn endpoints_split_on_commas() {
        let cli = Cli::parse_from(["raftkvctl", "--endpoints", "a:1,b:2", "status"]);
        assert_eq!(cli.endpoints, vec!["a:1", "b:2"]);
    }
}
