//! etcd's command line: flag names, defaults and `ETCD_*` environment variables, turned into
//! a [`Settings`] (the [`ServerConfig`] plus what the binary itself needs: listeners,
//! keepalive, log level).
//!
//! Parsing is a pure function of the arguments and the process environment, so tests call
//! [`Settings::parse_from`] directly. Nothing here binds sockets or touches the data dir.
//! Flags raftkv does not implement are accepted and reported in [`Settings::warnings`]
//! (see `ignored_flags.rs`); the binary logs them once logging is set up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};

use super::flag_values::{
    parse_feature_gates, parse_go_bool, parse_go_duration, parse_initial_cluster,
    parse_listen_urls, split_urls, ListenUrl,
};
use super::ignored_flags::{env_name, Kind, IGNORED_FLAGS};
use crate::server::{AutoCompaction, ClusterState, ServerConfig};

/// The flags raftkv implements, with etcd's names and defaults.
#[derive(Parser, Debug)]
#[command(
    name = "raftkv",
    version,
    about = "An etcd-compatible, Raft-based key-value store"
)]
struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    name: String,
    /// Path to the data directory (default `<name>.raftkv`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (gRPC and HTTP on the same port).
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    listen_client_urls: String,
    /// Client URLs of this member, published to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    listen_peer_urls: String,
    /// Peer URLs of this member, as the other members reach it.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    initial_advertise_peer_urls: String,
    /// Initial cluster: `name=peer-url,...` (default: this member alone).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// `new` to bootstrap a cluster, `existing` to join one.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    initial_cluster_state: String,
    /// Token that keeps the ids of distinct clusters apart.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 10_000)]
    snapshot_count: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    max_request_bytes: usize,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    max_txn_ops: usize,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    auto_compaction_mode: String,
    /// Auto compaction retention for mvcc key value store. 0 means disable auto
    /// compaction (periodic: a duration or hours; revision: a revision count).
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    auto_compaction_retention: String,
    /// Raise alarms when backend size exceeds the given quota (0 = the 2 GiB default).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    quota_backend_bytes: u64,
    /// Additional URLs serving /metrics and the health endpoints over plain HTTP.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", default_value = "")]
    listen_metrics_urls: String,
    /// Log level: debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Minimum interval a client should wait before pinging the server. raftkv answers
    /// every ping, so any value is honoured.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s")]
    grpc_keepalive_min_time: String,
    /// Interval of server-to-client pings on idle connections (0 disables them).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h")]
    grpc_keepalive_interval: String,
    /// How long to wait for a ping's answer before closing the connection.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s")]
    grpc_keepalive_timeout: String,
    /// Fault injection for the jepsen harness's self-test: linearizable reads skip ReadIndex.
    #[arg(long, hide = true)]
    unsafe_test_stale_reads: bool,
    /// Interval of progress notifications to idle watchers that asked for them (also
    /// accepted as etcd 3.4's `--experimental-watch-progress-notify-interval`).
    #[arg(
        long,
        env = "ETCD_WATCH_PROGRESS_NOTIFY_INTERVAL",
        alias = "experimental-watch-progress-notify-interval",
        default_value = "10m"
    )]
    watch_progress_notify_interval: String,
    /// Time duration after which a warning is generated if applying a request (raftkv: a
    /// batch of committed entries) takes more time (also accepted as etcd 3.6's
    /// `--warning-apply-duration`).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION",
        alias = "warning-apply-duration",
        default_value = "100ms"
    )]
    experimental_warning_apply_duration: String,
    /// Check this member's data against its peers' (HashKV) before serving clients; a
    /// mismatch refuses the start. `--flag` alone or `--flag=true|false`.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false"
    )]
    experimental_initial_corrupt_check: String,
    /// Interval of the leader's corruption check against its followers (0 = off).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME",
        default_value = "0s"
    )]
    experimental_corrupt_check_time: String,
    /// etcd 3.6's name for `--experimental-corrupt-check-time` (wins when both are given).
    #[arg(long, env = "ETCD_CORRUPT_CHECK_TIME", hide = true)]
    corrupt_check_time: Option<String>,
    /// etcd 3.6's feature gates, `Name=true|false,...`; raftkv implements
    /// `InitialCorruptCheck` (the 3.6 spelling of `--experimental-initial-corrupt-check`)
    /// and warns about the others.
    #[arg(long, env = "ETCD_FEATURE_GATES", default_value = "")]
    feature_gates: String,
}

/// Everything the binary needs to start one member.
#[derive(Debug)]
pub struct Settings {
    /// The server's configuration.
    pub server: ServerConfig,
    /// Client listeners (gRPC + HTTP).
    pub listen_client: Vec<SocketAddr>,
    /// Peer listeners.
    pub listen_peer: Vec<SocketAddr>,
    /// Extra HTTP-only listeners for `/metrics` and the health routes.
    pub listen_metrics: Vec<SocketAddr>,
    /// One of etcd's log levels, validated.
    pub log_level: String,
    /// HTTP/2 ping interval towards idle clients (`None`: never).
    pub grpc_keepalive_interval: Option<Duration>,
    /// How long a server ping may stay unanswered.
    pub grpc_keepalive_timeout: Duration,
    /// `--auto-compaction-*`: the compaction policy the leader runs (`None`: disabled).
    pub auto_compaction: Option<AutoCompaction>,
    /// Progress notifications to idle watchers (`--watch-progress-notify-interval`).
    pub watch_progress_notify_interval: Duration,
    /// Check the data against the peers' before serving (`--experimental-initial-corrupt-check`
    /// or `--feature-gates=InitialCorruptCheck=true`).
    pub initial_corrupt_check: bool,
    /// The leader's periodic corruption check (`--experimental-corrupt-check-time`; `None`:
    /// off).
    pub corrupt_check_time: Option<Duration>,
    /// Messages to log once logging is up: ignored flags, unknown `ETCD_*` variables, TLS.
    pub warnings: Vec<String>,
}

const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "panic", "fatal"];

impl Settings {
    /// Parse `args` (the program name first, as in `std::env::args`) and the process's
    /// `ETCD_*` variables. `Err` carries clap's message (usage, `--help`, `--version`
    /// included: print it with `exit()`) or a configuration error.
    pub fn parse_from<I, T>(args: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut cmd = command();
        let args = normalize_dashes(&cmd, args);
        let mut warnings = unknown_env_warnings(&cmd, std::env::vars().map(|(k, _)| k));
        let matches = cmd.try_get_matches_from_mut(args)?;
        let flags = Flags::from_arg_matches(&matches)?;
        warnings.extend(ignored_flag_warnings(&matches));
        let settings = settings_from(flags, warnings)?;
        Ok(settings)
    }
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// clap's own outcome: a usage error, or `--help`/`--version` output.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// A flag's value is not valid (etcd's wording where it has one).
    #[error("{0}")]
    Invalid(String),
}

/// The implemented flags plus every ignored etcd flag, with its `ETCD_*` variable.
fn command() -> clap::Command {
    // Go's flag package lets a later occurrence of a flag replace an earlier one.
    let mut cmd = Flags::command().args_override_self(true);
    for &(name, kind) in IGNORED_FLAGS {
        let arg = Arg::new(name).long(name).env(env_name(name)).hide(true);
        let arg = match kind {
            Kind::Bool => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .action(ArgAction::Set),
            Kind::Value => arg.num_args(1).action(ArgAction::Set),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Go's `flag` package also accepts `-name value`; rewrite single-dash long flags to clap's
/// `--name` form. Values are left alone: only `-word` tokens that name a flag change.
fn normalize_dashes(cmd: &clap::Command, args: Vec<String>) -> Vec<String> {
    let is_flag = |name: &str| cmd.get_arguments().any(|a| a.get_long() == Some(name));
    args.into_iter()
        .map(|a| {
            let single = a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
            let name = a.trim_start_matches('-').split('=').next().unwrap_or("");
            if single && (is_flag(name) || name == "help" || name == "version") {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

/// One warning per ignored flag that was given (on the command line or by environment).
fn ignored_flag_warnings(matches: &ArgMatches) -> Vec<String> {
    IGNORED_FLAGS
        .iter()
        .filter(|(name, _)| matches.contains_id(name) && matches.value_source(name).is_some())
        .map(|(name, _)| {
            let value = matches
                .get_one::<String>(name)
                .map(String::as_str)
                .unwrap_or("");
            format!("flag --{name}={value} is not implemented by raftkv and is ignored")
        })
        .collect()
}

/// etcd warns about `ETCD_*` variables that match no flag; so do we.
fn unknown_env_warnings(cmd: &clap::Command, vars: impl Iterator<Item = String>) -> Vec<String> {
    let known: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    vars.filter(|k| k.starts_with("ETCD_") && !known.contains(k))
        .map(|k| format!("unrecognized environment variable {k}"))
        .collect()
}

/// Validate the implemented flags and build the settings.
fn settings_from(f: Flags, mut warnings: Vec<String>) -> Result<Settings, ConfigError> {
    let invalid = ConfigError::Invalid;
    if !LOG_LEVELS.contains(&f.log_level.as_str()) {
        return Err(invalid(format!("unknown log level {:?}", f.log_level)));
    }
    check_timeouts(f.heartbeat_interval, f.election_timeout).map_err(invalid)?;
    let initial_cluster_state = match f.initial_cluster_state.as_str() {
        "new" => ClusterState::New,
        "existing" => ClusterState::Existing,
        other => {
            return Err(invalid(format!(
                "invalid value {other:?} for --initial-cluster-state"
            )))
        }
    };
    let advertise_peer_urls = split_urls(&f.initial_advertise_peer_urls);
    let initial_cluster = match &f.initial_cluster {
        Some(value) => parse_initial_cluster(value).map_err(invalid)?,
        None => vec![(f.name.clone(), advertise_peer_urls.clone())],
    };
    let listen_client = listeners(&f.listen_client_urls, &mut warnings).map_err(invalid)?;
    let listen_peer = listeners(&f.listen_peer_urls, &mut warnings).map_err(invalid)?;
    let listen_metrics = listeners(&f.listen_metrics_urls, &mut warnings).map_err(invalid)?;
    parse_go_duration(&f.grpc_keepalive_min_time).map_err(invalid)?;
    let interval = parse_go_duration(&f.grpc_keepalive_interval).map_err(invalid)?;
    let timeout = parse_go_duration(&f.grpc_keepalive_timeout).map_err(invalid)?;
    let progress = parse_go_duration(&f.watch_progress_notify_interval).map_err(invalid)?;
    let warning_apply_duration =
        parse_go_duration(&f.experimental_warning_apply_duration).map_err(invalid)?;
    if progress.is_zero() {
        return Err(invalid(
            "--watch-progress-notify-interval must be > 0".to_string(),
        ));
    }
    let (initial_corrupt_check, corrupt_check_time) = corrupt_checks(&f, &mut warnings)?;
    let data_dir = f
        .data_dir
        .unwrap_or_else(|| PathBuf::from(format!("{}.raftkv", f.name)));
    let server = ServerConfig {
        name: f.name,
        data_dir,
        initial_cluster,
        initial_cluster_state,
        initial_cluster_token: f.initial_cluster_token,
        advertise_client_urls: split_urls(&f.advertise_client_urls),
        advertise_peer_urls,
        heartbeat_interval: Duration::from_millis(f.heartbeat_interval),
        election_timeout: Duration::from_millis(f.election_timeout),
        snapshot_count: f.snapshot_count,
        max_request_bytes: f.max_request_bytes,
        max_txn_ops: f.max_txn_ops,
        quota_backend_bytes: f.quota_backend_bytes,
        warning_apply_duration,
        unsafe_test_stale_reads: f.unsafe_test_stale_reads,
    };
    Ok(Settings {
        server,
        listen_client,
        listen_peer,
        listen_metrics,
        log_level: f.log_level,
        grpc_keepalive_interval: (!interval.is_zero()).then_some(interval),
        grpc_keepalive_timeout: timeout,
        auto_compaction: AutoCompaction::parse(
            &f.auto_compaction_mode,
            &f.auto_compaction_retention,
        )
        .map_err(invalid)?,
        watch_progress_notify_interval: progress,
        initial_corrupt_check,
        corrupt_check_time,
        warnings,
    })
}

/// The corruption-check flags: whether the initial check runs (either spelling enables it)
/// and the periodic check's interval. Feature gates other than `InitialCorruptCheck` are
/// named in a warning.
fn corrupt_checks(
    f: &Flags,
    warnings: &mut Vec<String>,
) -> Result<(bool, Option<Duration>), ConfigError> {
    let invalid = ConfigError::Invalid;
    let mut initial = parse_go_bool(&f.experimental_initial_corrupt_check).map_err(|e| {
        invalid(format!(
            "invalid boolean value {:?} for -experimental-initial-corrupt-check: {e}",
            f.experimental_initial_corrupt_check
        ))
    })?;
    for (gate, enabled) in parse_feature_gates(&f.feature_gates).map_err(invalid)? {
        if gate == "InitialCorruptCheck" {
            initial |= enabled;
        } else {
            warnings.push(format!(
                "feature gate {gate}={enabled} is not implemented by raftkv and is ignored"
            ));
        }
    }
    let (flag, value) = match &f.corrupt_check_time {
        Some(value) => ("corrupt-check-time", value),
        None => (
            "experimental-corrupt-check-time",
            &f.experimental_corrupt_check_time,
        ),
    };
    // Go's flag package words it so, whatever was wrong with the duration.
    let every = parse_go_duration(value).map_err(|_| {
        invalid(format!(
            "invalid value {value:?} for flag -{flag}: parse error"
        ))
    })?;
    Ok((initial, (!every.is_zero()).then_some(every)))
}

/// etcd's checks on `--heartbeat-interval` and `--election-timeout` (milliseconds).
fn check_timeouts(heartbeat_ms: u64, election_ms: u64) -> Result<(), String> {
    if heartbeat_ms == 0 {
        return Err("--heartbeat-interval must be > 0".to_string());
    }
    if election_ms < 5 * heartbeat_ms {
        return Err(format!(
            "--election-timeout[{election_ms}ms] should be at least as 5 times as \
             --heartbeat-interval[{heartbeat_ms}ms]"
        ));
    }
    if election_ms > 50_000 {
        return Err(format!(
            "--election-timeout[{election_ms}ms] is too long, and should be set less than 50000ms"
        ));
    }
    Ok(())
}

/// Socket addresses of a listen-URL list, warning once per `https` URL (no TLS yet).
fn listeners(list: &str, warnings: &mut Vec<String>) -> Result<Vec<SocketAddr>, String> {
    let urls: Vec<ListenUrl> = parse_listen_urls(list)?;
    for u in urls.iter().filter(|u| u.tls) {
        warnings.push(format!(
            "TLS is not implemented: serving plain HTTP on {}",
            u.addr
        ));
    }
    Ok(urls.iter().map(|u| u.addr).collect())
}
