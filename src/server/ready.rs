//! Carrying out one `Ready` (the contract in `src/raft/types.rs`): send, persist with one
//! fsync, send what waited for durability, apply the snapshot and the committed entries in
//! one MVCC batch, serve reads, wake waiters, `advance`, and take a snapshot every
//! `snapshot_count` applied entries.
//!
//! A write is acknowledged only here, after its entry is durable in the local WAL and
//! applied to the local store. The WAL sync, the apply and each heartbeat sent are timed
//! here for etcd's "took too long" warnings (`slow_ops.rs`). Part of the driver; runs only
//! on its thread.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::apply::{apply_entries, ApplyContext, ApplyOutcome};
use super::driver::Driver;
use super::members;
use super::ServerError;
use crate::raft::{
    Entry, Index, Message, MessageKind, NodeId, Ready, Snapshot, SnapshotMetadata, SoftState,
};

/// Log entries kept behind a snapshot so a slightly lagging follower catches up from the
/// log rather than from a whole image (etcd keeps 5000).
const CATCH_UP_ENTRIES_MAX: u64 = 5000;

impl Driver {
    /// Handles one `Ready` end to end.
    pub(super) fn handle_ready(&mut self) -> Result<(), ServerError> {
        let rd = self.raw.ready();
        if let Some(ss) = rd.soft_state {
            self.on_soft_state(ss);
        }
        let Ready {
            hard_state,
            entries,
            snapshot,
            messages,
            persisted_messages,
            committed_entries,
            read_states,
            must_sync,
            ..
        } = rd;
        self.send(messages)?;
        if let Some(s) = &snapshot {
            self.wal.save_snapshot(&s.metadata)?;
        }
        if !entries.is_empty() {
            self.wal.append(&entries)?;
        }
        if let Some(hs) = &hard_state {
            self.wal.set_hard_state(hs)?;
        }
        if must_sync {
            self.sync_wal()?;
        }
        self.send(persisted_messages)?;
        if let Some(s) = &snapshot {
            self.on_snapshot(s)?;
        }
        let (outcome, applied) = self.apply_timed(&committed_entries)?;
        for rs in &read_states {
            self.reads.confirm(rs);
        }
        self.raw.advance();
        for id in std::mem::take(&mut self.snapshot_failures) {
            self.raw.report_snapshot(id, false);
        }
        self.finish_apply(outcome);
        self.publish_status(applied);
        self.reads.release(applied);
        self.maybe_snapshot()?;
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        Ok(())
    }

    /// The driver's invariants: the Raft core's and the WAL's own, and the store never
    /// behind what Raft believes applied (the apply loop skips what the store holds).
    pub(super) fn check_invariants(&self) {
        self.raw.check_invariants();
        self.wal.check_invariants();
        if let Ok(store) = self.shared.store() {
            assert!(
                store.applied_index() >= self.raw.applied().0,
                "store applied {} is behind raft applied {}",
                store.applied_index(),
                self.raw.applied()
            );
        }
        assert!(
            self.wal.snapshot().index < self.raw.first_index(),
            "the WAL snapshot {} is past the raft log start {}",
            self.wal.snapshot().index,
            self.raw.first_index()
        );
    }

    fn on_soft_state(&mut self, ss: SoftState) {
        let leader = ss.leader.map_or(0, |l| l.0);
        let old = self.shared.leader.swap(leader, Ordering::SeqCst);
        let m = &self.shared.metrics;
        m.has_leader.set(i64::from(leader != 0));
        m.is_leader.set(i64::from(leader == self.shared.member_id));
        if leader != old {
            self.slow.reset_heartbeats();
        }
        if leader != 0 && leader != old {
            m.leader_changes_seen.inc();
            tracing::info!(
                member = self.shared.member_id,
                leader,
                term = self.raw.term().0,
                "leader elected"
            );
        }
        let mut since = self
            .shared
            .leaderless_since
            .lock()
            .expect("leader lock poisoned");
        match (leader, *since) {
            (0, None) => *since = Some(Instant::now()),
            (0, Some(_)) => {}
            _ => *since = None,
        }
    }

    /// Hands messages to the transport; InstallSnapshot messages go with a store image.
    fn send(&mut self, msgs: Vec<Message>) -> Result<(), ServerError> {
        let mut plain = Vec::with_capacity(msgs.len());
        let now = Instant::now();
        for m in msgs {
            if m.kind == MessageKind::Heartbeat {
                self.slow.heartbeat_sent(m.to, now, &self.shared.metrics);
            }
            if m.kind != MessageKind::InstallSnapshot {
                plain.push(m);
                continue;
            }
            // The image is the whole store as of now: it may be newer than the snapshot
            // index in the message; the receiver skips entries it already holds.
            let image = self.shared.store()?.snapshot();
            match image {
                Ok(image) => self.transport.send_snapshot(m, Box::new(image)),
                Err(e) => {
                    tracing::warn!(to = m.to.0, error = %e, "cannot read a snapshot image");
                    self.snapshot_failures.push(m.to);
                }
            }
        }
        if !plain.is_empty() {
            self.transport.send(plain);
        }
        Ok(())
    }

    /// A snapshot from the leader: the inbox installed its image already; refresh the
    /// membership view from the store.
    fn on_snapshot(&mut self, s: &Snapshot) -> Result<(), ServerError> {
        let store = self.shared.store()?;
        let applied = store.applied_index();
        if applied < s.metadata.index.0 {
            return Err(ServerError::Storage(format!(
                "raft installed a snapshot at {} but the store is at {applied}",
                s.metadata.index
            )));
        }
        {
            // The image replaced the store: its leases replace the lessor's.
            let mut lessor = self.shared.lessor.lock().expect("lessor lock poisoned");
            super::lease_apply::rebuild(&mut lessor, &store)?;
        }
        if let Some(meta) = members::load(&store)? {
            drop(store);
            for m in meta.members.values() {
                // New peers, and known ones whose URLs a MemberUpdate inside the image moved.
                let known = self.members.get(&m.id).map(|k| &k.peer_ur_ls);
                if m.id != self.shared.member_id && known != Some(&m.peer_ur_ls) {
                    self.transport.set_peer(NodeId(m.id), m.peer_ur_ls.clone());
                }
            }
            let removed_self = meta.removed.contains(&self.shared.member_id);
            for id in self
                .members
                .keys()
                .filter(|id| !meta.members.contains_key(id))
            {
                self.transport.remove_peer(NodeId(*id));
            }
            *self
                .shared
                .removed_members
                .write()
                .expect("removed lock poisoned") = meta.removed;
            self.members = meta.members;
            *self.shared.members.write().expect("members lock poisoned") = self.members.clone();
            self.published = self.is_published();
            if removed_self {
                self.on_removed();
            }
        }
        Ok(())
    }

    /// One WAL fdatasync (group commit), observed in the metrics and warned about when slow.
    fn sync_wal(&mut self) -> Result<(), ServerError> {
        let started = Instant::now();
        self.wal.sync()?;
        let m = &self.shared.metrics;
        self.slow.fsync_took(started.elapsed(), m);
        m.wal_write_bytes.set(self.wal.written_bytes() as i64);
        Ok(())
    }

    /// [`Driver::apply`], warned about and counted when slower than
    /// `--experimental-warning-apply-duration`.
    fn apply_timed(&mut self, entries: &[Entry]) -> Result<(ApplyOutcome, u64), ServerError> {
        let started = Instant::now();
        let applied = self.apply(entries)?;
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            let span = (first.index.0, last.index.0);
            let took = started.elapsed();
            self.slow.apply_took(took, span, &self.shared.metrics);
        }
        Ok(applied)
    }

    fn apply(&mut self, entries: &[Entry]) -> Result<(ApplyOutcome, u64), ServerError> {
        let shared = self.shared.clone();
        let mut store = shared.store()?;
        let outcome = apply_entries(
            ApplyContext {
                raw: &mut self.raw,
                store: &mut store,
                members: &mut self.members,
                transport: &*self.transport,
                metrics: &shared.metrics,
                alarms: &shared.alarms,
                lessor: &shared.lessor,
            },
            entries,
        )?;
        // Still under the store lock: no catch-up read can slip between commit and notify.
        let mut outcome = outcome;
        if !outcome.events.is_empty() {
            shared.watch_hub.notify(&outcome.events, outcome.revision);
            outcome.events = Vec::new();
        }
        Ok((outcome, store.applied_index()))
    }

    /// Wakes the clients whose proposals were applied and refreshes the member view.
    fn finish_apply(&mut self, outcome: ApplyOutcome) {
        for (id, data, result) in outcome.results {
            if self
                .waiters
                .get(&id)
                .is_none_or(|(_, proposed)| *proposed != data)
            {
                continue;
            }
            let (waiter, _) = self.waiters.remove(&id).expect("checked above");
            // An error here is the request's answer (etcd does not count it as a failed
            // proposal); abandoned proposals are counted by the driver's sweep.
            if result.is_ok() && outcome.physical_compactions.contains(&id) {
                self.physical_waiters.push((waiter, result));
                continue;
            }
            let _ = waiter.send(result);
        }
        if outcome.members_changed {
            *self.shared.members.write().expect("members lock poisoned") = self.members.clone();
            self.published = self.is_published();
        }
        self.after_removals(&outcome.removed, outcome.removed_self);
    }

    fn publish_status(&self, applied: u64) {
        let s = &self.shared;
        s.term.store(self.raw.term().0, Ordering::SeqCst);
        s.commit.store(self.raw.commit().0, Ordering::SeqCst);
        s.applied.store(applied, Ordering::SeqCst);
        let learner = self.raw.conf_state().learners.contains(&self.raw.id());
        s.is_learner.store(learner, Ordering::SeqCst);
        let m = &s.metrics;
        m.is_learner.set(i64::from(learner));
        m.proposals_committed.set(self.raw.commit().0 as i64);
        m.proposals_applied.set(applied as i64);
        m.proposals_pending.set(self.waiters.len() as i64);
    }

    /// Every `snapshot_count` applied entries: flush the store, then let Raft and the WAL
    /// drop the log up to a point that keeps some entries for lagging followers.
    fn maybe_snapshot(&mut self) -> Result<(), ServerError> {
        let count = self.shared.cfg.snapshot_count.max(1);
        let applied = self.raw.applied().0;
        if applied < self.last_snapshot_applied + count {
            return Ok(());
        }
        self.last_snapshot_applied = applied;
        let point = self.shared.store()?.durable_sync_point();
        let durable = point.sync()?.min(applied);
        let keep = (count / 2).min(CATCH_UP_ENTRIES_MAX);
        let index = Index(durable.saturating_sub(keep));
        if index < self.raw.first_index() || index <= self.wal.snapshot().index {
            return Ok(());
        }
        let term = self
            .raw
            .term_at(index)
            .expect("an index at or after first_index has a term");
        let metadata = SnapshotMetadata {
            index,
            term,
            conf_state: self.raw.conf_state(),
        };
        self.wal.save_snapshot(&metadata)?;
        self.wal.release_to(index)?;
        self.raw.compact(Snapshot {
            metadata,
            data: Default::default(),
        });
        tracing::debug!(index = index.0, applied, "snapshot taken");
        Ok(())
    }
}
