//! Black-box test harness: runs etcd-compatible server binaries (real etcd or raftkv) as
//! child processes on loopback ports and drives them with the real `etcdctl`.
//!
//! Every test that needs a server goes through here, so the same test runs unchanged against
//! real etcd 3.4 (the reference) and against raftkv: a test takes a [`ServerBinary`] and never
//! cares which one it got. The harness only starts, stops, kills and queries processes; it
//! never reaches into a server's data directory or its library code.
//!
//! Included by `tests/differential.rs`, `tests/blackbox_kv.rs` and `tests/cluster_failover.rs`
//! with `mod support;`. Each test binary uses a different part of it, hence the blanket
//! `dead_code` allowance.
//!
//! - [`binary`]: finds etcd, etcdctl and raftkv, and decides between skipping and failing
//!   when one is missing.
//! - [`cluster`]: a 1..n member cluster on free loopback ports with temporary data
//!   directories; kill -9, stop, restart, readiness and leader queries.
//! - [`member`]: one server process (command line, log file, child; killed on drop).
//! - [`etcdctl`]: runs `etcdctl` (API v3) and captures stdout, stderr and the exit code.
//! - [`http`]: plain HTTP GETs (`/health`, `/readyz`).
//! - [`poll_until`]: wait for a condition with a deadline.
//! - [`json`]: the few JSON number lookups the harness needs (no serde in dev-dependencies).
#![allow(dead_code)]

pub mod binary;
pub mod cluster;
pub mod etcdctl;
pub mod http;
pub mod json;
pub mod member;

#[allow(unused_imports)]
pub use binary::{ServerBinary, ServerKind};
#[allow(unused_imports)]
pub use cluster::{Cluster, ClusterOptions, MemberStatus};
#[allow(unused_imports)]
pub use etcdctl::CtlOutput;

/// Polls `ok` every [`cluster::POLL_INTERVAL`] until it holds; fails the test naming `what`
/// once `deadline` has passed.
pub fn poll_until(what: &str, deadline: std::time::Duration, mut ok: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + deadline;
    while !ok() {
        assert!(
            std::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(cluster::POLL_INTERVAL);
    }
}

/// Generates one `#[test]` per server binary for a test body `fn(&ServerBinary)`:
/// `<name>_etcd` always (skipped loudly when etcd is not installed, failing under `CI=true`)
/// and `<name>_raftkv` (skipped while the raftkv binary does not exist).
#[macro_export]
macro_rules! server_tests {
    ($($name:ident),* $(,)?) => {
        mod etcd {
            $(
                #[test]
                fn $name() {
                    if let Some(binary) = $crate::support::binary::require_etcd() {
                        super::$name(&binary);
                    }
                }
            )*
        }
        mod raftkv {
            $(
                #[test]
                fn $name() {
                    if let Some(binary) = $crate::support::binary::require_raftkv() {
                        super::$name(&binary);
                    }
                }
            )*
        }
    };
}
