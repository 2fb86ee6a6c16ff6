//! The `Wal` handle: appending entries, hard states and snapshot markers, group commit,
//! rolling to a new segment, and releasing old segments.
//!
//! Records are encoded into an in-memory buffer and handed to the disk when the buffer is
//! full, when a segment is cut, or on [`Wal::sync`]; only `sync` (and a cut) calls
//! `fdatasync`. So a caller that persists a whole Raft `Ready` and then calls `sync` once
//! pays one fdatasync for all of it: group commit. Opening and replay live in `open.rs`.
//! The writer must not read segments back: what it needs of the log (`last_index`, the terms
//! used by the replay rules) it keeps in a [`LogWindow`].

use std::path::PathBuf;

use tracing::{debug, info};

use super::disk::{Disk, DiskFile};
use super::error::WalError;
use super::record::{self, Record, ENTRY_FIXED_BYTES, RECORD_PAYLOAD_BYTES_MAX};
use super::segment::segment_name;
use super::window::LogWindow;
use crate::raft::{Entry, HardState, Index, SnapshotMetadata, Term};

/// Settings of a [`Wal`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is cut (a new file started) once it has at least this many bytes.
    pub segment_bytes_max: u64,
    /// Encoded records are handed to the disk once this many wait in memory (they are made
    /// durable only by [`Wal::sync`] regardless).
    pub buffer_bytes_max: usize,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes_max: 64 << 20,
            buffer_bytes_max: 1 << 20,
        }
    }
}

/// What the WAL knows about one segment file.
#[derive(Clone, Debug)]
pub(crate) struct SegmentInfo {
    pub seq: u64,
    pub path: PathBuf,
    /// The highest entry index written into this segment, if it holds any entry.
    pub entry_index_max: Option<Index>,
}

/// The durable Raft log. See the [module docs](crate::wal) for the format and the rules.
///
/// Lock order and ownership: a `Wal` is owned by one task (the server's raft loop); it is not
/// shared, so it holds no lock. Dropping a `Wal` discards records not yet synced.
pub struct Wal<D: Disk> {
    pub(crate) disk: D,
    pub(crate) dir: PathBuf,
    pub(crate) options: WalOptions,
    /// Oldest first; the last one is being appended to. Never empty.
    pub(crate) segments: Vec<SegmentInfo>,
    pub(crate) active: D::File,
    /// Bytes of the active segment, counting those still in `buffer`.
    pub(crate) active_bytes: u64,
    /// Encoded records not yet handed to the disk.
    pub(crate) buffer: Vec<u8>,
    /// Whether records were written since the last fdatasync.
    pub(crate) unsynced: bool,
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: SnapshotMetadata,
    /// The terms of the entries after `snapshot`, by the replay rules.
    pub(crate) window: LogWindow<Term>,
    /// Set by the first IO error; every later call fails with it.
    pub(crate) poisoned: Option<String>,
    /// Bytes handed to the disk since this `Wal` was opened (for metrics).
    pub(crate) written_bytes: u64,
}

impl<D: Disk> Wal<D> {
    /// Appends `entries` (contiguous, `entries[0].index` in `first_index()..=last_index() + 1`).
    /// If `entries[0].index <= last_index()`, the entries from there on are replaced: the
    /// records are written after the old ones and replay honours the latest. Not durable until
    /// [`Wal::sync`]. Fails with `EntryTooLarge` (writing nothing) or an IO error.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        self.check_append(entries)?;
        self.guard(|wal| {
            for entry in entries {
                wal.cut_if_full()?;
                wal.write_record(&Record::Entry(entry.clone()))?;
                wal.window
                    .push(entry.index, entry.term, wal.snapshot.index)
                    .unwrap();
                let segment = wal.segments.last_mut().unwrap();
                segment.entry_index_max = segment.entry_index_max.max(Some(entry.index));
            }
            Ok(())
        })
    }

    /// Records the Raft hard state. Not durable until [`Wal::sync`].
    pub fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), WalError> {
        self.guard(|wal| {
            wal.cut_if_full()?;
            wal.write_record(&Record::HardState(*hard_state))?;
            wal.hard_state = *hard_state;
            Ok(())
        })
    }

    /// Records a snapshot marker: the log up to `meta.index` is covered by a snapshot (the
    /// replay rules in `window.rs` say which entries survive). `meta.index` must not be below
    /// the previous marker's. Not durable until [`Wal::sync`].
    pub fn save_snapshot(&mut self, meta: &SnapshotMetadata) -> Result<(), WalError> {
        assert!(
            meta.index >= self.snapshot.index,
            "snapshot marker at {} is older than the saved one at {}",
            meta.index,
            self.snapshot.index
        );
        self.guard(|wal| {
            wal.cut_if_full()?;
            wal.write_record(&Record::Snapshot(meta.clone()))?;
            wal.window.apply_snapshot(meta.index, meta.term);
            wal.snapshot = meta.clone();
            Ok(())
        })
    }

    /// Makes everything written since the last sync durable with one `fdatasync`: group
    /// commit. Does nothing (no syscall) when nothing was written.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.guard(Wal::sync_active)
    }

    /// Deletes the oldest segments whose entries are all below `index`, keeping the active
    /// one. Entries above the latest snapshot marker are never released, whatever `index`.
    ///
    /// The durability rule: call this only once the state machine (the MVCC backend) is
    /// durably flushed at or beyond `index - 1`, because after a crash the node replays only
    /// the entries the WAL still has. Segments are removed oldest first, each removal made
    /// durable before the next, so a crash leaves a consecutive run of segments.
    ///
    /// Syncs first if anything is unsynced: a removal is durable at once, so what makes it
    /// safe (the snapshot marker, the hard state and marker at the head of the segment that
    /// becomes the first) must be durable before it.
    pub fn release_to(&mut self, index: Index) -> Result<(), WalError> {
        let limit = index.min(self.snapshot.index.next());
        self.guard(|wal| {
            let releasable = wal.segments[..wal.segments.len() - 1]
                .iter()
                .take_while(|segment| segment.entry_index_max.is_none_or(|max| max < limit))
                .count();
            if releasable > 0 {
                wal.sync_active()?;
            }
            for _ in 0..releasable {
                let oldest = wal.segments.remove(0);
                wal.disk
                    .remove(&oldest.path)
                    .map_err(|e| WalError::io(&oldest.path, e))?;
                wal.disk
                    .sync_dir(&wal.dir)
                    .map_err(|e| WalError::io(&wal.dir, e))?;
                info!(file = %oldest.path.display(), below_index = %limit, "released wal segment");
            }
            Ok(())
        })
    }

    /// The index after the latest snapshot marker: the first entry the log may hold.
    pub fn first_index(&self) -> Index {
        self.snapshot.index.next()
    }

    /// The last entry's index (the snapshot's when no entry follows it), as recovery would
    /// find it after a sync.
    pub fn last_index(&self) -> Index {
        self.window.last_index().unwrap_or(self.snapshot.index)
    }

    /// The latest hard state written.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The latest snapshot marker written (index 0 when none).
    pub fn snapshot(&self) -> &SnapshotMetadata {
        &self.snapshot
    }

    /// How many segment files the WAL has.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes handed to the disk since this `Wal` was opened (etcd's
    /// `etcd_disk_wal_write_bytes_total`); buffered records count once flushed.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Asserts the writer's invariants; a failure is a bug in the WAL or its caller.
    pub fn check_invariants(&self) {
        assert!(
            !self.segments.is_empty(),
            "a wal always has an active segment"
        );
        for pair in self.segments.windows(2) {
            assert_eq!(
                pair[0].seq + 1,
                pair[1].seq,
                "segment seqs must be consecutive"
            );
        }
        if let Some(first) = self.window.first_index() {
            assert_eq!(
                first,
                self.snapshot.index.next(),
                "entries must follow the snapshot"
            );
        }
        assert!(
            self.buffer.len() as u64 <= self.active_bytes,
            "buffer beyond segment size"
        );
        assert!(
            self.unsynced || self.buffer.is_empty(),
            "buffered records must be unsynced"
        );
    }

    /// Runs `step` unless the WAL is poisoned; an IO error poisons it.
    fn guard(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        if let Some(reason) = &self.poisoned {
            return Err(WalError::Poisoned {
                reason: reason.clone(),
            });
        }
        let result = step(self);
        if let Err(error @ WalError::Io { .. }) = &result {
            self.poisoned = Some(error.to_string());
        }
        result
    }

    /// Checks what a caller can get wrong without a bug (sizes); asserts the rest.
    fn check_append(&self, entries: &[Entry]) -> Result<(), WalError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        assert!(
            first.index > self.snapshot.index && first.index <= self.last_index().next(),
            "append at {} outside {}..={}",
            first.index,
            self.first_index(),
            self.last_index().next()
        );
        for (pair, offset) in entries.windows(2).zip(1..) {
            assert_eq!(
                pair[1].index.0,
                first.index.0 + offset,
                "appended entries have a gap"
            );
        }
        match entries
            .iter()
            .find(|e| e.data.len() + ENTRY_FIXED_BYTES > RECORD_PAYLOAD_BYTES_MAX)
        {
            Some(e) => Err(WalError::EntryTooLarge {
                index: e.index.0,
                data_bytes: e.data.len(),
            }),
            None => Ok(()),
        }
    }

    fn write_record(&mut self, record: &Record) -> Result<(), WalError> {
        self.active_bytes += record::encode(record, &mut self.buffer) as u64;
        self.unsynced = true;
        if self.buffer.len() >= self.options.buffer_bytes_max {
            self.flush()?;
        }
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), WalError> {
        if !self.unsynced {
            return Ok(());
        }
        self.flush()?;
        let path = &self.segments.last().unwrap().path;
        self.active.sync_data().map_err(|e| WalError::io(path, e))?;
        self.unsynced = false;
        Ok(())
    }

    /// Hands the buffered records to the disk (no sync).
    fn flush(&mut self) -> Result<(), WalError> {
        if !self.buffer.is_empty() {
            let path = &self.segments.last().unwrap().path;
            self.active
                .append(&self.buffer)
                .map_err(|e| WalError::io(path, e))?;
            self.written_bytes += self.buffer.len() as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    fn cut_if_full(&mut self) -> Result<(), WalError> {
        if self.active_bytes < self.options.segment_bytes_max {
            return Ok(());
        }
        // The old segment is made complete and durable before the next one exists, so only
        // the last segment can ever have a torn tail.
        self.flush()?;
        let path = &self.segments.last().unwrap().path;
        self.active.sync_data().map_err(|e| WalError::io(path, e))?;
        let seq = self.segments.last().unwrap().seq + 1;
        let (file, segment) = create_segment(&self.disk, &self.dir, seq, self.last_index().next())?;
        debug!(file = %segment.path.display(), "cut new wal segment");
        self.active = file;
        self.active_bytes = 0;
        self.segments.push(segment);
        self.write_head()
    }

    /// Writes the records every segment starts with: its header, then the current hard state
    /// and snapshot marker, so that replay can start at any segment once older ones are
    /// released.
    pub(crate) fn write_head(&mut self) -> Result<(), WalError> {
        let segment = self.segments.last().unwrap();
        let first_index = self.last_index().next();
        self.write_record(&Record::SegmentHeader {
            seq: segment.seq,
            first_index,
        })?;
        if self.hard_state != HardState::default() {
            self.write_record(&Record::HardState(self.hard_state))?;
        }
        if self.snapshot != SnapshotMetadata::default() {
            self.write_record(&Record::Snapshot(self.snapshot.clone()))?;
        }
        Ok(())
    }
}

/// Creates segment `seq` in `dir` and makes its existence durable.
pub(crate) fn create_segment<D: Disk>(
    disk: &D,
    dir: &std::path::Path,
    seq: u64,
    first_index: Index,
) -> Result<(D::File, SegmentInfo), WalError> {
    let path = dir.join(segment_name(seq, first_index));
    let file = disk.create(&path).map_err(|e| WalError::io(&path, e))?;
    disk.sync_dir(dir).map_err(|e| WalError::io(dir, e))?;
    Ok((
        file,
        SegmentInfo {
            seq,
            path,
            entry_index_max: None,
        },
    ))
}
