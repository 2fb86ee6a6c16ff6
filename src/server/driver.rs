//! The driver thread: the only owner of the `RawNode`, the `Wal` and the store's write
//! side. One loop: take in everything queued (proposals, reads, peer messages), tick the
//! Raft clock, then carry out `Ready` batches (see `ready.rs`).
//!
//! Batching: all proposals taken in one iteration go to Raft as one batch
//! (`RawNode::propose_batch`: one Append per follower, or one forwarded Propose), are
//! appended by one `Ready` (one WAL write, one fsync) and applied in one MVCC batch; all readers queued in one iteration
//! share one ReadIndex round. The driver never blocks on a client or a peer: replies go
//! through oneshot channels, peer traffic through the non-blocking [`Transport`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;

use super::reads::ReadQueue;
use super::shared::{Applied, ApplyWaiter, Input, Shared};
use super::slow_ops::SlowOps;
use super::transport::Transport;
use super::ServerError;
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::{self, internal_request::Request};
use crate::raft::{self, MessageKind, NodeId, RawNode};
use crate::wal::{FsDisk, Wal};

/// Inputs handled per iteration at most, so that a flood cannot starve Ready handling.
const INPUTS_PER_ITERATION_MAX: usize = 4096;

/// Proposal bytes handed to Raft in one batch at most (a follower forwards a batch in one
/// peer message, which must stay well under the transport's message limit).
const PROPOSAL_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// The driver's state; lives on its own thread.
pub struct Driver {
    pub(super) shared: Arc<Shared>,
    pub(super) raw: RawNode,
    pub(super) wal: Wal<FsDisk>,
    pub(super) transport: Arc<dyn Transport>,
    inputs: Receiver<Input>,
    /// Proposals of this member waiting to be applied, by request id, with their data.
    pub(super) waiters: HashMap<u64, (ApplyWaiter, Bytes)>,
    /// Proposals Raft refused (no leader yet): retried once a leader is known.
    stalled: Vec<(u64, Bytes)>,
    /// Proposals taken in this iteration, handed to Raft as one batch (one Append).
    batch: Vec<(u64, Bytes)>,
    batch_bytes: usize,
    pub(super) reads: ReadQueue,
    /// The driver's copy of the member records (the shared view is refreshed from it).
    pub(super) members: BTreeMap<u64, pb::Member>,
    /// Physical compactions applied logically, answered when the backend has caught up.
    pub(super) physical_waiters: Vec<(ApplyWaiter, Result<Applied, ServerError>)>,
    /// Applied index at the last snapshot.
    pub(super) last_snapshot_applied: u64,
    /// Snapshot transfers that could not start; reported after `advance`.
    pub(super) snapshot_failures: Vec<NodeId>,
    tick: Duration,
    next_tick: Instant,
    last_sweep: Instant,
    last_lease_check: Instant,
    /// Whether the lessor was last told this member leads.
    lease_primary: bool,
    /// Whether this member's name and client URLs are in the member records.
    pub(super) published: bool,
    last_publish: Option<Instant>,
    /// "took too long" thresholds and the leader's heartbeat clock (`slow_ops.rs`).
    pub(super) slow: SlowOps,
    /// Conf changes Raft refused (an earlier change not yet applied): retried while their
    /// waiter waits and this member still leads (else answered `NotLeader`).
    stalled_conf: Vec<(u64, raft::ConfChange)>,
    /// Set when this member applied its own removal: the driver stops then (after a few
    /// ticks, so that the answer to the removal and the last messages get out).
    pub(super) stop_at: Option<Instant>,
}

impl Driver {
    /// A driver over recovered state.
    pub fn new(
        shared: Arc<Shared>,
        raw: RawNode,
        wal: Wal<FsDisk>,
        transport: Arc<dyn Transport>,
        inputs: Receiver<Input>,
        members: BTreeMap<u64, pb::Member>,
    ) -> Driver {
        let tick = shared.cfg.heartbeat_interval.max(Duration::from_millis(1));
        let last_snapshot_applied = raw.applied().0;
        let slow = SlowOps::new(
            shared.cfg.warning_apply_duration,
            shared.cfg.heartbeat_interval,
        );
        let mut d = Driver {
            shared,
            raw,
            wal,
            transport,
            inputs,
            waiters: HashMap::new(),
            stalled: Vec::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            physical_waiters: Vec::new(),
            reads: ReadQueue::default(),
            members,
            last_snapshot_applied,
            snapshot_failures: Vec::new(),
            tick,
            next_tick: Instant::now() + tick,
            last_sweep: Instant::now(),
            last_lease_check: Instant::now(),
            lease_primary: false,
            published: false,
            last_publish: None,
            slow,
            stalled_conf: Vec::new(),
            stop_at: None,
        };
        d.published = d.is_published();
        let voters = d.raw.conf_state().voters;
        if voters.len() == 1 && voters.contains(&d.raw.id()) {
            // A single member need not wait an election timeout to lead.
            d.raw.campaign();
        }
        d
    }

    /// Runs until stopped or until storage fails (then the member stops serving).
    pub fn run(mut self) {
        // Set even if the driver panics (a bug: an assert), so that handles answer
        // `server stopped` instead of timing out forever.
        let _stopped_on_exit = MarkStopped(self.shared.clone());
        let quota = super::etcd_server::quota_bytes(self.shared.cfg.quota_backend_bytes);
        self.shared
            .metrics
            .note_member(self.shared.member_id, quota);
        if let Err(e) = self.refresh_db_size().and_then(|()| self.run_loop()) {
            tracing::error!(error = %e, "raft driver failed: this member stops");
        }
        self.shutdown();
    }

    fn run_loop(&mut self) -> Result<(), ServerError> {
        loop {
            if !self.collect_inputs()? {
                return Ok(());
            }
            if self.shared.removed.load(Ordering::SeqCst) {
                // Also set by the inbox when a peer refused us as removed.
                self.on_removed();
            }
            if self.stop_at.is_some_and(|t| Instant::now() >= t) {
                tracing::error!("the member has been permanently removed from the cluster");
                return Ok(());
            }
            self.tick_if_due();
            self.housekeeping()?;
            if self.raw.has_ready() {
                self.handle_ready()?;
            }
        }
    }

    /// Waits for the first input or the next tick, then takes whatever else is queued.
    /// Returns false when asked to stop.
    fn collect_inputs(&mut self) -> Result<bool, ServerError> {
        let wait = self.next_tick.saturating_duration_since(Instant::now());
        let wait = if self.raw.has_ready() {
            Duration::ZERO
        } else {
            wait
        };
        let mut next = match self.inputs.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        };
        let mut taken = 0;
        while let Some(input) = next.take() {
            if !self.handle_input(input) {
                return Ok(false);
            }
            taken += 1;
            if taken < INPUTS_PER_ITERATION_MAX {
                next = self.inputs.try_recv().ok();
            }
        }
        self.propose_batch();
        Ok(true)
    }

    /// Hands the proposals taken so far to Raft in one batch; refused ones wait for a
    /// leader in `stalled`.
    fn propose_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        let data = batch.iter().map(|(_, d)| d.clone()).collect();
        if self.raw.propose_batch(data).is_err() {
            self.stalled.extend(batch);
        }
    }

    fn handle_input(&mut self, input: Input) -> bool {
        match input {
            Input::Propose { id, data, waiter } => {
                if waiter.is_closed() {
                    return true;
                }
                self.waiters.insert(id, (waiter, data.clone()));
                self.batch_bytes += data.len();
                self.batch.push((id, data));
                if self.batch_bytes >= PROPOSAL_BATCH_BYTES_MAX {
                    self.propose_batch();
                }
            }
            Input::Read { waiter } => self.reads.push(waiter),
            Input::Step(m) => self.step(m, false),
            Input::StepInstalled(m) => self.step(m, true),
            Input::Unreachable(id) => self.raw.report_unreachable(id),
            Input::SnapshotReport(id, ok) => self.raw.report_snapshot(id, ok),
            Input::TransferLeader(to) => self.raw.transfer_leader(to),
            Input::ConfChange {
                id,
                cc,
                promote,
                waiter,
            } => self.propose_conf_change(id, cc, promote, waiter),
            Input::Stop => return false,
        }
        true
    }

    fn step(&mut self, m: raft::Message, image_installed: bool) {
        if m.kind == MessageKind::InstallSnapshot && !image_installed {
            let index = m.snapshot.as_ref().map_or(0, |s| s.metadata.index.0);
            let applied = self.shared.store().map_or(0, |s| s.applied_index());
            if index > applied {
                tracing::warn!(
                    from = m.from.0,
                    index,
                    "dropping an InstallSnapshot without its image"
                );
                return;
            }
        }
        if let Err(e) = self.raw.step(m) {
            tracing::debug!(error = %e, "dropped a peer message");
        }
    }

    fn tick_if_due(&mut self) {
        let now = Instant::now();
        if now < self.next_tick {
            return;
        }
        self.raw.tick();
        self.next_tick += self.tick;
        if self.next_tick < now {
            // The loop fell behind (a long fsync): do not tick in a burst.
            self.next_tick = now + self.tick;
        }
    }

    /// Work that waits on a leader or a clock: stalled proposals, read rounds, publishing
    /// this member's client URLs, forgetting abandoned waiters, physical compaction.
    fn housekeeping(&mut self) -> Result<(), ServerError> {
        let now = Instant::now();
        if self.raw.leader().is_some() {
            self.retry_stalled();
            let election = self.shared.cfg.election_timeout;
            self.reads.requeue_stale(now, election);
            if let Some(ctx) = self.reads.start_round(now) {
                self.raw.read_index(ctx);
            }
            self.maybe_publish(now);
        }
        let leading = self.raw.leader() == Some(self.raw.id());
        if leading != self.lease_primary
            || now.duration_since(self.last_lease_check)
                >= super::lease_expiry::EXPIRY_CHECK_INTERVAL
        {
            // Leadership changes reach the lessor at once; expiry scans are throttled.
            self.lease_primary = leading;
            self.last_lease_check = now;
            self.lease_housekeeping(now);
        }
        if now.duration_since(self.last_sweep) >= Duration::from_secs(1) {
            self.last_sweep = now;
            let before = self.waiters.len();
            self.waiters.retain(|_, (w, _)| !w.is_closed());
            // A closed waiter is a proposal its client gave up on (timed out or went away).
            let failed = before - self.waiters.len();
            self.shared.metrics.proposals_failed.inc_by(failed as u64);
            let waiters = &self.waiters;
            self.stalled.retain(|(id, _)| waiters.contains_key(id));
            self.refresh_db_size()?;
        }
        self.compact_physically()
    }

    /// One step of physical compaction (bounded work, so the loop stays responsive);
    /// answers `physical` compactions once nothing is left to remove.
    fn compact_physically(&mut self) -> Result<(), ServerError> {
        let mut store = self.shared.store()?;
        if store.compaction_pending() {
            store.compact_step()?;
        }
        if !store.compaction_pending() {
            for (waiter, result) in self.physical_waiters.drain(..) {
                let _ = waiter.send(result);
            }
        }
        Ok(())
    }

    /// Mirrors the backend size into the metrics and the quota check, and reaps retired
    /// backends.
    fn refresh_db_size(&mut self) -> Result<(), ServerError> {
        let mut store = self.shared.store()?;
        // Backends a defrag or an install left to a reader go once the reader is done.
        store.reap_retired()?;
        let size = store.db_size()?;
        drop(store);
        self.shared.note_db_size(&size);
        Ok(())
    }

    fn retry_stalled(&mut self) {
        let waiters = &self.waiters;
        self.batch = std::mem::take(&mut self.stalled);
        self.batch.retain(|(id, _)| waiters.contains_key(id));
        self.propose_batch();
        let leading = self.raw.leader() == Some(self.raw.id());
        for (id, cc) in std::mem::take(&mut self.stalled_conf) {
            if self.waiters.get(&id).is_none_or(|(w, _)| w.is_closed()) {
                continue;
            }
            if !leading {
                // Its checks ran on the leader this member was; a new leader must run them
                // again: the client (or the relaying follower) retries there.
                if let Some((waiter, _)) = self.waiters.remove(&id) {
                    let _ = waiter.send(Err(ServerError::NotLeader));
                }
                continue;
            }
            if self.raw.propose_conf_change(cc.clone()).is_err() {
                self.stalled_conf.push((id, cc));
            }
        }
    }

    /// Proposes a membership change; a promotion only on the leader and only for a
    /// learner in sync with its log (etcd's `isLearnerReady`).
    fn propose_conf_change(
        &mut self,
        id: u64,
        cc: raft::ConfChange,
        promote: bool,
        waiter: ApplyWaiter,
    ) {
        let status = self.raw.status();
        let me = self.raw.id();
        let Some(leader) = status.progress.get(&me) else {
            // Only the leader knows how connected and how caught up the members are.
            let _ = waiter.send(Err(ServerError::NotLeader));
            return;
        };
        let conf = self.raw.conf_state();
        let since = |id| self.transport.active_since(id);
        let now = Instant::now();
        if let Err(e) = super::reconfig::check_connected(&conf, me, &cc, promote, since, now) {
            let _ = waiter.send(Err(e));
            return;
        }
        if promote {
            let Some(learner) = status.progress.get(&cc.node) else {
                // The leader tracks every member: this one is gone (a racing removal).
                let _ = waiter.send(Err(ServerError::MemberNotFound));
                return;
            };
            let ready =
                super::reconfig::learner_in_sync(learner.match_index.0, leader.match_index.0);
            if !ready {
                let _ = waiter.send(Err(ServerError::LearnerNotReady));
                return;
            }
        }
        self.waiters.insert(id, (waiter, cc.encode()));
        if self.raw.propose_conf_change(cc.clone()).is_err() {
            self.stalled_conf.push((id, cc));
        }
    }

    pub(super) fn is_published(&self) -> bool {
        let cfg = &self.shared.cfg;
        self.members
            .get(&self.shared.member_id)
            .is_some_and(|m| m.name == cfg.name && m.client_ur_ls == cfg.advertise_client_urls)
    }

    /// Proposes this member's name and client URLs until they are applied (etcd's
    /// ClusterMemberAttrSet after start), at most once per two election timeouts.
    fn maybe_publish(&mut self, now: Instant) {
        let every = 2 * self.shared.cfg.election_timeout;
        if self.published
            || self
                .last_publish
                .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        self.last_publish = Some(now);
        let cfg = &self.shared.cfg;
        let req = raftkvpb::InternalRequest {
            header: Some(raftkvpb::RequestHeader::default()),
            request: Some(Request::ClusterMemberAttrSet(
                raftkvpb::ClusterMemberAttrSetRequest {
                    member_id: self.shared.member_id,
                    name: cfg.name.clone(),
                    client_urls: cfg.advertise_client_urls.clone(),
                },
            )),
        };
        let _ = self.raw.propose(Bytes::from(req.encode_to_vec()));
    }

    /// Records members removed by an applied batch; when this member is one of them, it
    /// answers what it can for a few ticks, then stops (etcd waits 10 ticks too), and the
    /// process exits (see `api/run.rs`).
    pub(super) fn after_removals(&mut self, removed: &[u64], removed_self: bool) {
        if !removed.is_empty() {
            let mut set = self
                .shared
                .removed_members
                .write()
                .expect("removed lock poisoned");
            set.extend(removed);
        }
        if removed_self {
            self.on_removed();
        }
    }

    pub(super) fn on_removed(&mut self) {
        if self.stop_at.is_none() {
            tracing::warn!(
                member = self.shared.member_id,
                "this member was removed from the cluster"
            );
            self.shared.removed.store(true, Ordering::SeqCst);
            self.stop_at = Some(Instant::now() + 10 * self.tick);
        }
    }

    /// Makes what was written durable, fails the waiting requests (their receivers see
    /// the channel close: `Stopped`) and releases the store.
    fn shutdown(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.waiters.clear();
        self.stalled.clear();
        self.reads = ReadQueue::default();
        if let Err(e) = self.wal.sync() {
            tracing::error!(error = %e, "syncing the WAL at stop failed");
        }
        let mut guard = self
            .shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = guard.as_ref() {
            if let Err(e) = store.sync_durable() {
                tracing::error!(error = %e, "syncing the store at stop failed");
            }
        }
        *guard = None;
    }
}

/// Marks the server stopped and leaderless when dropped (at the driver thread's exit).
struct MarkStopped(Arc<Shared>);

impl Drop for MarkStopped {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.leader.store(0, Ordering::SeqCst);
        self.0.metrics.has_leader.set(0);
        self.0.metrics.is_leader.set(0);
    }
}
