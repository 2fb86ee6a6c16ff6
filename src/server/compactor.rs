//! Auto-compaction (`--auto-compaction-mode periodic|revision`,
//! `--auto-compaction-retention`), with etcd's policies:
//!
//! - periodic, retention `P` (a Go duration, or a bare number of hours): every
//!   `min(P, 1h) / 10` the current revision is sampled, keeping the last `P / that + 1`
//!   samples; every `min(P, 1h)` the leader compacts to the oldest sample, i.e. it keeps
//!   about `P` of history;
//! - revision, retention `N`: every 5 minutes the leader compacts to `current - N`.
//!
//! Only the leader proposes, and only a logical Compact goes through the log: the driver
//! then deletes old revisions in bounded steps between Readys, so writes never wait for
//! it. The policies are pure ([`PeriodicPolicy`], [`RevisionPolicy`]); [`spawn_auto_compactor`]
//! drives one on a tokio task. Called by the binary (`src/api/run.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::EtcdServer;
use crate::proto::etcdserverpb as pb;

/// How often the revision policy looks (etcd's `revInterval`).
pub const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(300);
const HOUR: Duration = Duration::from_secs(3600);

/// What `--auto-compaction-mode` / `--auto-compaction-retention` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

impl AutoCompaction {
    /// Parses the two flags as etcd does; `Ok(None)` when the retention is 0 (disabled).
    pub fn parse(mode: &str, retention: &str) -> Result<Option<AutoCompaction>, String> {
        let retention = retention.trim();
        match mode {
            "periodic" => {
                let period = match retention.parse::<u64>() {
                    Ok(hours) => HOUR * hours as u32,
                    Err(_) => crate::api::parse_go_duration(retention).map_err(|e| {
                        format!("invalid --auto-compaction-retention {retention:?}: {e}")
                    })?,
                };
                Ok((!period.is_zero()).then_some(AutoCompaction::Periodic(period)))
            }
            "revision" => {
                let n: i64 = retention.parse().map_err(|_| {
                    format!("invalid --auto-compaction-retention {retention:?} for revision mode")
                })?;
                Ok((n > 0).then_some(AutoCompaction::Revision(n)))
            }
            other => Err(format!(
                "unknown auto-compaction mode {other:?} (periodic or revision)"
            )),
        }
    }
}

/// etcd's periodic compactor, without clocks: feed it samples every [`Self::sample_interval`].
#[derive(Clone, Debug)]
pub struct PeriodicPolicy {
    period: Duration,
    samples: VecDeque<i64>,
    last_compacted: i64,
}

impl PeriodicPolicy {
    /// A policy keeping `period` of history.
    pub fn new(period: Duration) -> PeriodicPolicy {
        assert!(!period.is_zero(), "a zero period disables auto-compaction");
        PeriodicPolicy {
            period,
            samples: VecDeque::new(),
            last_compacted: 0,
        }
    }

    /// How often to compact: the period, at most an hour.
    pub fn compact_interval(&self) -> Duration {
        self.period.min(HOUR)
    }

    /// How often to sample the revision: a tenth of the compact interval.
    pub fn sample_interval(&self) -> Duration {
        (self.compact_interval() / 10).max(Duration::from_millis(1))
    }

    fn samples_kept(&self) -> usize {
        (self.period.as_nanos() / self.sample_interval().as_nanos()) as usize + 1
    }

    /// Records the current revision (call every sample interval).
    pub fn sample(&mut self, revision: i64) {
        self.samples.push_back(revision);
        while self.samples.len() > self.samples_kept() {
            self.samples.pop_front();
        }
    }

    /// The revision to compact to now (a full window's oldest sample), if it moves on.
    pub fn target(&self) -> Option<i64> {
        if self.samples.len() < self.samples_kept() {
            return None;
        }
        let rev = *self.samples.front()?;
        (rev > self.last_compacted).then_some(rev)
    }

    /// Records a compaction that went through.
    pub fn compacted(&mut self, revision: i64) {
        self.last_compacted = self.last_compacted.max(revision);
    }
}

/// etcd's revision compactor: keep the last `retention` revisions.
#[derive(Clone, Copy, Debug)]
pub struct RevisionPolicy {
    retention: i64,
    last_compacted: i64,
}

impl RevisionPolicy {
    /// A policy keeping `retention` revisions.
    pub fn new(retention: i64) -> RevisionPolicy {
        RevisionPolicy {
            retention,
            last_compacted: 0,
        }
    }

    /// The revision to compact to at `current`, if it moves on.
    pub fn target(&self, current: i64) -> Option<i64> {
        let rev = current - self.retention;
        (rev > 0 && rev > self.last_compacted).then_some(rev)
    }

    /// Records a compaction that went through.
    pub fn compacted(&mut self, revision: i64) {
        self.last_compacted = self.last_compacted.max(revision);
    }
}

impl EtcdServer {
    /// Whether the driver has stopped (background tasks end then).
    pub fn is_stopped(&self) -> bool {
        self.shared()
            .stopped
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn is_leader(server: &EtcdServer) -> bool {
    server.leader() == Some(server.member_id())
}

/// Proposes a logical compaction; true if it applied or was already done.
async fn compact(server: &EtcdServer, revision: i64, why: &str) -> bool {
    tracing::info!(revision, retention = why, "starting auto-compaction");
    let req = pb::CompactionRequest {
        revision,
        physical: false,
    };
    match server.compact(req).await {
        Ok(_) => {
            tracing::info!(revision, "finished auto-compaction");
            true
        }
        Err(crate::server::ServerError::Mvcc(crate::mvcc::MvccError::Compacted)) => true,
        Err(e) => {
            tracing::warn!(revision, error = %e, "auto-compaction failed; will retry");
            false
        }
    }
}

/// Runs `policy` for `server` on the current tokio runtime until the server stops.
pub fn spawn_auto_compactor(server: EtcdServer, policy: AutoCompaction) {
    tokio::spawn(async move {
        match policy {
            AutoCompaction::Periodic(period) => run_periodic(server, period).await,
            AutoCompaction::Revision(n) => run_revision(server, n).await,
        }
    });
}

async fn run_periodic(server: EtcdServer, period: Duration) {
    let mut policy = PeriodicPolicy::new(period);
    let mut last_attempt = Instant::now();
    let why = format!("{period:?}");
    loop {
        tokio::time::sleep(policy.sample_interval()).await;
        if server.is_stopped() {
            return;
        }
        policy.sample(server.header().revision);
        if !is_leader(&server) || last_attempt.elapsed() < policy.compact_interval() {
            continue;
        }
        if let Some(rev) = policy.target() {
            last_attempt = Instant::now();
            if compact(&server, rev, &why).await {
                policy.compacted(rev);
            }
        }
    }
}

async fn run_revision(server: EtcdServer, retention: i64) {
    let mut policy = RevisionPolicy::new(retention);
    let why = format!("{retention} revisions");
    loop {
        tokio::time::sleep(REVISION_CHECK_INTERVAL).await;
        if server.is_stopped() {
            return;
        }
        if !is_leader(&server) {
            continue;
        }
        if let Some(rev) = policy.target(server.header().revision) {
            if compact(&server, rev, &why).await {
                policy.compacted(rev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_etcd() {
        let p = |m, r| AutoCompaction::parse(m, r);
        assert_eq!(p("periodic", "1"), Ok(Some(AutoCompaction::Periodic(HOUR))));
        let ten_min = Duration::from_secs(600);
        assert_eq!(
            p("periodic", "10m"),
            Ok(Some(AutoCompaction::Periodic(ten_min)))
        );
        assert_eq!(p("periodic", "0"), Ok(None));
        assert_eq!(
            p("revision", "1000"),
            Ok(Some(AutoCompaction::Revision(1000)))
        );
        assert!(p("revision", "1h").is_err());
        assert!(p("hourly", "1").is_err());
    }

    #[test]
    fn periodic_keeps_one_period_of_samples() {
        // 10 s period: sample every 1 s, keep 11 samples, compact to the oldest.
        let mut policy = PeriodicPolicy::new(Duration::from_secs(10));
        assert_eq!(policy.sample_interval(), Duration::from_secs(1));
        for rev in 1..=10 {
            policy.sample(rev * 100);
            assert_eq!(policy.target(), None, "window not full at sample {rev}");
        }
        policy.sample(1100);
        assert_eq!(policy.target(), Some(100), "the revision one period ago");
        policy.compacted(100);
        assert_eq!(policy.target(), None, "nothing new to compact");
        policy.sample(1200);
        assert_eq!(policy.target(), Some(200));
    }

    #[test]
    fn long_periods_compact_hourly() {
        let policy = PeriodicPolicy::new(HOUR * 72);
        assert_eq!(policy.compact_interval(), HOUR);
        assert_eq!(policy.sample_interval(), Duration::from_secs(360));
    }

    #[test]
    fn revision_keeps_the_last_n() {
        let mut policy = RevisionPolicy::new(100);
        assert_eq!(policy.target(50), None);
        assert_eq!(policy.target(250), Some(150));
        policy.compacted(150);
        assert_eq!(policy.target(250), None);
        assert_eq!(policy.target(251), Some(151));
    }
}
