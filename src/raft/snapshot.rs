//! Log compaction and snapshot installation (paper §7).
//!
//! The application decides when to compact: having applied up to some index it takes an
//! image of its state and calls `RawNode::compact`; the core drops the entries up to that
//! index and keeps the snapshot to send to followers that need entries it no longer has.
//!
//! A follower receiving InstallSnapshot ignores it if it is stale (at or below its commit
//! index: it already has those entries), fast-forwards its commit index if its log already
//! contains the snapshot's last entry, and otherwise replaces its whole log and membership
//! with the snapshot and hands it to the application in `Ready.snapshot`.
//!
//! Worked example: leader compacted to 100 (snapshot term 3); follower 3 comes back with a
//! log ending at 40. Its progress `next` is 41, `term(40)` is compacted, so the leader sends
//! InstallSnapshot(100) and waits in `Snapshot` state. Follower 3 restores: log empty after
//! 100, commit 100, and acks index 100; the leader moves it to `Replicate` from 101.

use super::node::Raft;
use super::{Message, MessageKind, Snapshot};

impl Raft {
    /// Follower: an InstallSnapshot from the leader.
    pub(crate) fn handle_snapshot(&mut self, m: Message) {
        let Some(snapshot) = m.snapshot else {
            tracing::warn!(id = %self.id, from = %m.from, "InstallSnapshot without a snapshot");
            return;
        };
        let mut resp = self.msg(MessageKind::AppendResponse, m.from);
        resp.index = if self.restore(snapshot) {
            self.log.last_index()
        } else {
            self.log.committed
        };
        self.send(resp);
    }

    /// Installs `snapshot` unless it is stale or already covered by our log. Returns
    /// whether the log was replaced.
    fn restore(&mut self, snapshot: Snapshot) -> bool {
        let meta = &snapshot.metadata;
        if meta.index <= self.log.committed {
            return false;
        }
        if self.log.match_term(meta.index, meta.term) {
            // We have the entries; the snapshot only tells us they are committed.
            self.log.commit_to(meta.index);
            return false;
        }
        tracing::info!(id = %self.id, index = %meta.index, term = %meta.term, "restoring snapshot");
        self.tracker.set_conf(&meta.conf_state, meta.index.next());
        self.snapshot = Some(snapshot.clone());
        self.log.restore(snapshot);
        true
    }

    /// The application applied up to `snapshot`'s index and took this image.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.metadata.index;
        assert!(
            index <= self.log.applied,
            "compact to {index} beyond applied {}",
            self.log.applied
        );
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.metadata.index >= index)
        {
            return;
        }
        if index >= self.log.snapshot_index() {
            assert_eq!(
                self.log.term(index),
                Some(snapshot.metadata.term),
                "snapshot term does not match the log at {index}"
            );
        }
        self.log.compact(index);
        self.snapshot = Some(snapshot);
    }
}
