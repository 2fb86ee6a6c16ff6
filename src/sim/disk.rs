//! A simulated disk for one node: what the Ready loop persists, with fsync semantics.
//!
//! Writes (a Ready's batch, or a compaction) land in an operating-system buffer
//! and become durable only at [`Disk::sync`]. A crash ([`Disk::crash`]) keeps the synced
//! image plus a seeded prefix of the buffered writes (the disk wrote some of them before
//! power went out, in order) and loses the rest. A restarting node reads the result back
//! with [`Disk::recovered`].
//!
//! The disk knows nothing of Raft rules beyond the log's shape; it asserts only what a
//! correct core must never ask of it (a gap in the log). Called by `sim::node`.
//!
//! Worked example (snapshot at 0, empty log):
//! ```text
//! ready [1/1, 2/1] hs t=1; sync   -> synced log 1..=2
//! ready [3/2] hs t=2               -> buffered, not synced
//! compact at 2                     -> buffered
//! crash keeping 1 buffered write   -> log 1..=3 and term 2; the compaction is lost
//! ```

use crate::raft::{Entry, HardState, Index, Snapshot, Term};

/// One buffered write, applied to the image in order. A Ready's snapshot, entries and hard
/// state form one write: the WAL frames them as one batch and recovery drops a torn batch
/// whole (the core refuses a log whose entries are newer than its hard state).
#[derive(Clone, Debug)]
enum Write {
    Ready {
        /// A snapshot from the leader: it replaces the whole log.
        snapshot: Option<Snapshot>,
        /// Replaces the log suffix from `entries[0].index` on.
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    },
    /// The application's own snapshot: entries up to it are released.
    Compact(Snapshot),
}

/// The durable contents of a disk (or the view including unsynced writes).
#[derive(Clone, Debug, Default)]
pub struct DiskImage {
    /// The last written hard state.
    pub hard_state: HardState,
    /// The latest snapshot (index 0 when none).
    pub snapshot: Snapshot,
    /// Entries after `snapshot.metadata.index`, contiguous.
    pub entries: Vec<Entry>,
}

impl DiskImage {
    /// The index of the last entry (the snapshot's when the log is empty).
    pub fn last_index(&self) -> Index {
        self.entries
            .last()
            .map_or(self.snapshot.metadata.index, |e| e.index)
    }

    /// The term of the entry at `index`, if the image still holds it (or its snapshot
    /// stands exactly there).
    pub fn term(&self, index: Index) -> Option<Term> {
        let first = self.snapshot.metadata.index;
        if index == first {
            return Some(self.snapshot.metadata.term);
        }
        if index < first {
            return None;
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if present in the log (not compacted, not beyond the end).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let first = self.snapshot.metadata.index.0 + 1;
        if index.0 < first {
            return None;
        }
        self.entries.get((index.0 - first) as usize)
    }

    fn apply(&mut self, write: &Write) {
        match write {
            Write::Ready {
                snapshot,
                entries,
                hard_state,
            } => {
                if let Some(snap) = snapshot {
                    self.snapshot = snap.clone();
                    self.entries.clear();
                }
                self.append(entries);
                if let Some(hs) = hard_state {
                    self.hard_state = *hs;
                }
            }
            Write::Compact(snap) => self.compact(snap),
        }
    }

    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let snap_index = self.snapshot.metadata.index;
        assert!(
            first.index > snap_index && first.index <= self.last_index().next(),
            "append at {} leaves a gap or rewrites the snapshot (snapshot {}, last {})",
            first.index,
            snap_index,
            self.last_index()
        );
        let keep = (first.index.0 - snap_index.0 - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend(entries.iter().cloned());
    }

    fn compact(&mut self, snap: &Snapshot) {
        let index = snap.metadata.index;
        if index <= self.snapshot.metadata.index {
            return;
        }
        let drop = ((index.0 - self.snapshot.metadata.index.0) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.snapshot = snap.clone();
    }
}

/// A node's disk: a synced image plus buffered writes.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    synced: DiskImage,
    current: DiskImage,
    buffered: Vec<Write>,
}

impl Disk {
    /// What reads see now (synced plus buffered writes).
    pub fn current(&self) -> &DiskImage {
        &self.current
    }

    /// What would survive a crash that loses every buffered write.
    pub fn synced(&self) -> &DiskImage {
        &self.synced
    }

    /// How many writes are buffered and not yet durable.
    pub fn buffered_len(&self) -> usize {
        self.buffered.len()
    }

    /// Buffers what one Ready asks to persist, as one batch: a snapshot from the leader
    /// (replacing the log), entries (truncating the log at `entries[0].index` first) and
    /// the hard state.
    pub fn write_ready(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) {
        if snapshot.is_none() && entries.is_empty() && hard_state.is_none() {
            return;
        }
        let snapshot = snapshot.cloned();
        self.push(Write::Ready {
            snapshot,
            entries: entries.to_vec(),
            hard_state,
        });
    }

    /// Buffers the application's own snapshot and the release of the log up to it.
    pub fn write_compact(&mut self, snap: &Snapshot) {
        self.push(Write::Compact(snap.clone()));
    }

    /// fsync: every buffered write becomes durable.
    pub fn sync(&mut self) {
        for write in self.buffered.drain(..) {
            self.synced.apply(&write);
        }
    }

    /// Power loss: the first `survivors` buffered writes reached the platter, the rest are
    /// lost. The image afterwards is what a restarting node reads.
    pub fn crash(&mut self, survivors: usize) {
        let survivors = survivors.min(self.buffered.len());
        for write in self.buffered.drain(..).take(survivors) {
            self.synced.apply(&write);
        }
        self.current = self.synced.clone();
    }

    fn push(&mut self, write: Write) {
        self.current.apply(&write);
        self.buffered.push(write);
    }
}
