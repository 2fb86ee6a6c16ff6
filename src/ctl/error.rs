//! What can go wrong in `raftkvctl`, as one error enum the binary prints and exits on.
//!
//! Every variant is something the user's environment causes (a dead endpoint, a server
//! error, a missing binary, a busy port); our own bugs are `assert!`s, not variants.

use std::path::PathBuf;

/// An error `raftkvctl` reports to the user.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// An endpoint string that is not `host:port` or `http://host:port`.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// What the user gave.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// No endpoint accepted a connection within the dial timeout.
    #[error("could not connect to any endpoint ({endpoints}): {last_error}")]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The error of the last attempt.
        last_error: String,
    },
    /// The server answered with a gRPC error (etcd's code and message, verbatim).
    #[error("{endpoint}: {code:?}: {message}")]
    Rpc {
        /// The endpoint that answered.
        endpoint: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message, e.g. "etcdserver: no leader".
        message: String,
    },
    /// Some endpoints failed `status` (their errors were already printed).
    #[error("{failed} of {total} endpoints did not answer")]
    StatusIncomplete {
        /// Endpoints that failed.
        failed: usize,
        /// Endpoints asked.
        total: usize,
    },
    /// The server binary for `cluster start` was not found.
    #[error("server binary {0} not found (give one with --bin PATH)")]
    BinaryNotFound(PathBuf),
    /// Starting a member process or creating its data dir failed.
    #[error("member {member}: {action}: {source}")]
    Member {
        /// The member's name, e.g. "m2".
        member: String,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A member exited while the cluster was running.
    #[error("member {member} exited unexpectedly ({status})")]
    MemberExited {
        /// The member's name.
        member: String,
        /// Its exit status.
        status: String,
    },
    /// The ports `cluster start` needs do not fit in 1..=65535.
    #[error("ports for {members} members do not fit above base port {base_port}")]
    PortsOutOfRange {
        /// Members asked for.
        members: usize,
        /// The first port.
        base_port: u16,
    },
    /// An offline snapshot command (status, restore, verify) failed: the file is corrupt or
    /// truncated, the data dir exists, the flags disagree, or the disk failed.
    #[error("{0}")]
    Snapshot(String),
    /// `debug rot-value` failed (no store there, the key is absent, the member runs).
    #[error("{0}")]
    Debug(String),
    /// Benchmark parameters that cannot work (e.g. keys too short for the key space).
    #[error("invalid benchmark: {0}")]
    InvalidBench(String),
    /// Every benchmark request failed.
    #[error("all {0} requests failed")]
    BenchFailed(u64),
    /// Installing a signal handler failed.
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

impl CtlError {
    /// Wraps a gRPC status from `endpoint`.
    pub fn rpc(endpoint: &str, status: tonic::Status) -> CtlError {
        CtlError::Rpc {
            endpoint: endpoint.to_string(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}
