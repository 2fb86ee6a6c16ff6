//! One simulated member: a `RawNode`, its disk and its state machine, and the Ready loop
//! that joins them exactly as `Ready`'s contract says.
//!
//! The loop is split in two halves so that the cluster can interleave other events (and
//! crashes) between them, as a real server's fsync takes time:
//! - [`SimNode::begin_ready`]: take the `Ready`, hand `messages` to the network, write the
//!   snapshot, entries and hard state to the disk's buffer;
//! - [`SimNode::finish_ready`]: fsync if `must_sync`, release `persisted_messages`, apply
//!   the snapshot and committed entries, serve reads, `advance`, maybe compact.
//!
//! A crash drops the `RawNode` and the state machine and keeps only what the disk synced;
//! [`SimNode::restart`] rebuilds both from it. Called by `sim::cluster`.

use bytes::Bytes;

use super::app::App;
use super::disk::Disk;
use super::history::History;
use crate::raft::{
    ConfChange, ConfState, Config, Entry, EntryKind, Index, Message, NodeId, RawNode, ReadState,
    Ready, RecoveredState, SnapshotMetadata, SoftState,
};

/// What finishing a Ready produced that the cluster must act on.
#[derive(Debug, Default)]
pub struct Finished {
    /// Messages that may leave now that the write is durable.
    pub messages: Vec<Message>,
    /// Membership changes this node applied, in order.
    pub conf_changes: Vec<ConfChange>,
    /// Reads served (their index was applied).
    pub reads: Vec<ReadState>,
    /// The committed entries applied.
    pub applied: Vec<Entry>,
    /// The snapshot restored into the state machine, if any.
    pub restored: Option<SnapshotMetadata>,
}

/// What the transport tells a sender about its messages, as a real transport would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// An InstallSnapshot to `to` arrived (`ok`) or was lost.
    Snapshot {
        /// The receiver.
        to: NodeId,
        /// Whether it arrived.
        ok: bool,
    },
    /// An Append to this peer was lost to a cut link or a dead receiver.
    Unreachable(NodeId),
}

/// A simulated member.
pub struct SimNode {
    /// The member's id.
    pub id: NodeId,
    /// Its configuration (the seed changes on every restart).
    pub config: Config,
    /// The Raft core; `None` while the node is down.
    pub raw: Option<RawNode>,
    /// Its disk.
    pub disk: Disk,
    /// Its state machine (volatile).
    pub app: App,
    /// Removed from the cluster: stays down for good.
    pub removed: bool,
    /// How many times it restarted.
    pub restarts: u64,
    /// The membership a brand-new member starts with (before any snapshot).
    initial_conf_state: ConfState,
    /// The Ready taken by `begin_ready` and not yet finished.
    outstanding: Option<Ready>,
    /// Reads whose index is not applied yet.
    pending_reads: Vec<ReadState>,
    /// Transport reports to hand to the core when it is next idle.
    pub pending_reports: Vec<Report>,
    /// Take a snapshot every this many applied entries (0: never).
    compact_every: u64,
    record_applied: bool,
}

impl SimNode {
    /// Starts a member for the first time with an empty disk.
    pub fn start(
        config: Config,
        conf_state: ConfState,
        compact_every: u64,
        record: bool,
    ) -> SimNode {
        let mut node = SimNode {
            id: config.id,
            config,
            raw: None,
            disk: Disk::default(),
            app: App::default(),
            removed: false,
            restarts: 0,
            initial_conf_state: conf_state,
            outstanding: None,
            pending_reads: Vec::new(),
            pending_reports: Vec::new(),
            compact_every,
            record_applied: record,
        };
        node.boot(&History::default());
        node
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    /// Whether a Ready is taken and not yet finished (the node waits for its fsync).
    pub fn is_busy(&self) -> bool {
        self.outstanding.is_some()
    }

    /// Whether the node is up with nothing outstanding, so it can take input.
    pub fn is_idle(&self) -> bool {
        self.is_up() && !self.is_busy()
    }

    /// The core; panics if the node is down (a bug in the caller).
    pub fn raw(&mut self) -> &mut RawNode {
        let id = self.id;
        self.raw
            .as_mut()
            .unwrap_or_else(|| panic!("node {id} is down"))
    }

    /// Hands pending transport reports to the core.
    pub fn flush_reports(&mut self) {
        let reports = std::mem::take(&mut self.pending_reports);
        for report in reports {
            match report {
                Report::Snapshot { to, ok } => self.raw().report_snapshot(to, ok),
                Report::Unreachable(to) => self.raw().report_unreachable(to),
            }
        }
    }

    /// First half of the Ready loop. Returns the soft state change (if any) and the
    /// messages that may be sent at once; the Ready stays outstanding.
    pub fn begin_ready(&mut self, history: &mut History) -> (Option<SoftState>, Vec<Message>) {
        assert!(
            self.outstanding.is_none(),
            "node {}: two outstanding Readys",
            self.id
        );
        let mut rd = self.raw().ready();
        self.disk
            .write_ready(rd.snapshot.as_ref(), &rd.entries, rd.hard_state);
        history.on_log_write(self.id, self.disk.current(), &rd.entries);
        let messages = std::mem::take(&mut rd.messages);
        let soft = rd.soft_state;
        self.outstanding = Some(rd);
        (soft, messages)
    }

    /// Second half of the Ready loop; see the module docs.
    pub fn finish_ready(&mut self, history: &mut History) -> Finished {
        let rd = self
            .outstanding
            .take()
            .expect("finish_ready without begin_ready");
        if rd.must_sync {
            self.disk.sync();
        }
        let mut out = Finished {
            messages: rd.persisted_messages,
            ..Finished::default()
        };
        if let Some(snap) = &rd.snapshot {
            self.restore_app(snap, history);
            out.restored = Some(snap.metadata.clone());
        }
        for entry in &rd.committed_entries {
            self.app.apply(entry);
            history.on_apply(self.id, entry, self.app.chain);
            if entry.kind == EntryKind::ConfChange {
                let cc = ConfChange::decode(&entry.data)
                    .unwrap_or_else(|e| panic!("node {}: committed conf change {e}", self.id));
                self.app.conf_state = self.raw().apply_conf_change(&cc);
                out.conf_changes.push(cc);
            }
        }
        self.pending_reads.extend(rd.read_states);
        let applied = self.app.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .pending_reads
            .drain(..)
            .partition(|rs| rs.index <= applied);
        self.pending_reads = waiting;
        for rs in &ready {
            history.on_read_served(self.id, rs, applied);
        }
        out.reads = ready;
        out.applied = rd.committed_entries;
        self.raw().advance();
        self.maybe_compact();
        out
    }

    /// Replaces the state machine with a snapshot's image; the image must match what some
    /// node applied at that index.
    fn restore_app(&mut self, snap: &crate::raft::Snapshot, history: &History) {
        self.app.restore(snap);
        let app = &self.app;
        history.on_restore(self.id, app.applied, app.applied_term, app.chain);
    }

    /// The application snapshots itself every `compact_every` applied entries.
    fn maybe_compact(&mut self) {
        let since = self.app.applied.0 - self.disk.current().snapshot.metadata.index.0;
        if self.compact_every > 0 && since >= self.compact_every {
            self.compact_at_applied();
        }
    }

    /// Takes a snapshot at the applied index and releases the log up to it.
    pub fn compact_at_applied(&mut self) {
        if self.app.applied <= self.disk.current().snapshot.metadata.index {
            return;
        }
        let snap = self.app.snapshot();
        self.disk.write_compact(&snap);
        self.raw().compact(snap);
    }

    /// Power loss: the first `survivors` buffered writes make it to disk.
    pub fn crash(&mut self, survivors: usize) {
        self.raw = None;
        self.outstanding = None;
        self.pending_reads.clear();
        self.pending_reports.clear();
        self.disk.crash(survivors);
    }

    /// Restarts a crashed node from its disk.
    pub fn restart(&mut self, history: &History) {
        assert!(
            !self.is_up() && !self.removed,
            "node {} cannot restart",
            self.id
        );
        self.restarts += 1;
        self.config.seed = self
            .config
            .seed
            .wrapping_mul(31)
            .wrapping_add(self.restarts);
        self.boot(history);
    }

    fn boot(&mut self, history: &History) {
        let image = self.disk.synced().clone();
        let snap = &image.snapshot;
        let conf_state = if snap.metadata.index > Index(0) {
            snap.metadata.conf_state.clone()
        } else {
            self.initial_conf_state.clone()
        };
        let recovered = RecoveredState {
            hard_state: image.hard_state,
            snapshot: snap.metadata.clone(),
            entries: image.entries.clone(),
            conf_state: conf_state.clone(),
            applied: snap.metadata.index,
        };
        history.on_recover(self.id, &recovered);
        self.app = App::new(conf_state, self.record_applied);
        if snap.metadata.index > Index(0) {
            self.restore_app(snap, history);
        }
        let mut raw = RawNode::new(self.config.clone(), recovered).unwrap_or_else(|e| {
            panic!(
                "node {}: RawNode::new refused recovered state: {e}",
                self.id
            )
        });
        if snap.metadata.index > Index(0) {
            // The core recovers only the snapshot's metadata; hand it the image again so it
            // can send it to followers that lag behind the compaction point.
            raw.compact(snap.clone());
        }
        self.raw = Some(raw);
    }

    /// Asks the core for a linearizable read; `history` remembers what it must see.
    pub fn read_index(&mut self, context: Bytes, history: &mut History) {
        history.on_read_request(context.clone());
        self.raw().read_index(context);
    }
}
