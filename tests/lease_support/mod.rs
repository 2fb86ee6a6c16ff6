//! Helpers shared by the `tests/lease_*.rs` black-box tests: grant a lease with etcdctl,
//! read counts and revisions, and poll a condition until a deadline.
//!
//! Included with `#[path = "lease_support/mod.rs"] mod lease_support;` next to
//! `mod support;`. Not every test binary uses every helper.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use crate::support::json;
use crate::support::Cluster;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(100);

/// `lease grant <ttl>` through member `i`; returns the id (hex, as etcdctl prints and
/// takes it) and the granted TTL.
pub fn grant(cluster: &Cluster, i: usize, ttl_secs: u64) -> (String, u64) {
    let out = cluster
        .ctl(i, &["lease", "grant", &ttl_secs.to_string()])
        .ok("lease grant");
    // "lease 694d7c8f5b1d5e04 granted with TTL(10s)"
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert!(
        words.len() >= 5 && words[0] == "lease" && words[2] == "granted",
        "unexpected grant output {:?}",
        out.stdout
    );
    let ttl = words[4]
        .trim_start_matches("TTL(")
        .trim_end_matches("s)")
        .parse()
        .expect("granted TTL");
    (words[1].to_string(), ttl)
}

/// Keys under `prefix` as member `i` sees them locally (serializable), and the member's
/// revision.
pub fn count_local(cluster: &Cluster, i: usize, prefix: &str) -> Option<(u64, u64)> {
    let out = cluster.ctl(
        i,
        &[
            "--command-timeout=2s",
            "get",
            prefix,
            "--prefix",
            "--keys-only",
            "--consistency=s",
            "-w",
            "json",
        ],
    );
    if !out.success() {
        return None;
    }
    let count = json::u64_first(&out.stdout, "count").unwrap_or(0);
    Some((count, json::u64_first(&out.stdout, "revision")?))
}

/// Keys under `prefix` at revision `rev` (linearizable, through member `i`).
pub fn count_at(cluster: &Cluster, i: usize, prefix: &str, rev: u64) -> u64 {
    let rev = format!("--rev={rev}");
    let out = cluster
        .ctl(
            i,
            &["get", prefix, "--prefix", "--keys-only", &rev, "-w", "json"],
        )
        .ok("get --rev");
    json::u64_first(&out.stdout, "count").unwrap_or(0)
}

/// Polls `cond` every [`POLL`] until it returns `Some`, panicking with `what` after
/// `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?}: {what}"
        );
        std::thread::sleep(POLL);
    }
}
