//! Opening a WAL: find the segments, replay their records into the recovered state, repair
//! a torn tail of the last segment, and hand back a `Wal` ready to append.
//!
//! Recovery rules (also in the [module docs](crate::wal)): segments must be consecutive;
//! every record of every segment but the last must be valid; in the last segment a bad
//! frame with no valid record after it is a torn write and is cut off (the file is truncated
//! and synced, or removed if not even its header survived). Replay follows `window.rs`. It
//! must not guess: anything else is an error naming the file and byte offset.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::disk::{Disk, DiskFile};
use super::error::WalError;
use super::record::Record;
use super::segment::{parse_segment_name, scan, ScannedSegment};
use super::window::LogWindow;
use super::writer::{create_segment, SegmentInfo, Wal, WalOptions};
use crate::raft::{ConfState, Entry, HardState, Index, RecoveredState, SnapshotMetadata};

/// What [`Wal::open`] read back: the parts of `raft::RecoveredState` the log holds (the
/// server adds `conf_state` and `applied` from the state machine).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The latest hard state (default when none was written).
    pub hard_state: HardState,
    /// The latest snapshot marker (index 0 when none was written).
    pub snapshot: SnapshotMetadata,
    /// The entries after the snapshot, contiguous from `snapshot.index + 1`, conflicts
    /// resolved (a later record at index `i` replaced the entries from `i` on).
    pub entries: Vec<Entry>,
}

impl Recovered {
    /// The Raft core's starting state: what the log held, plus the membership and applied
    /// index the state machine stored atomically with its data.
    pub fn into_raft_state(self, conf_state: ConfState, applied: Index) -> RecoveredState {
        RecoveredState {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            entries: self.entries,
            conf_state,
            applied,
        }
    }
}

/// The state replay builds up, record by record.
#[derive(Default)]
struct Replay {
    hard_state: HardState,
    snapshot: SnapshotMetadata,
    window: LogWindow<Entry>,
}

/// A segment file found in the directory.
struct Found {
    seq: u64,
    first_index: Index,
    path: PathBuf,
}

impl<D: Disk> Wal<D> {
    /// Opens (creating if needed) the WAL in `dir` and returns it with the recovered state.
    /// Fails with `Corrupt`, `SegmentGap` or `MissingEntries` when the log cannot be trusted,
    /// and `Io` when the disk fails.
    pub fn open(
        disk: D,
        dir: impl Into<PathBuf>,
        options: WalOptions,
    ) -> Result<(Wal<D>, Recovered), WalError> {
        let dir = dir.into();
        disk.create_dir_all(&dir)
            .map_err(|e| WalError::io(&dir, e))?;
        let found = list_segments(&disk, &dir)?;
        let mut replay = Replay::default();
        let mut segments = Vec::new();
        let mut active = None;
        for (position, segment) in found.iter().enumerate() {
            let is_last = position + 1 == found.len();
            let bytes = disk
                .read(&segment.path)
                .map_err(|e| WalError::io(&segment.path, e))?;
            let scanned = scan(
                &bytes,
                &segment.path,
                segment.seq,
                segment.first_index,
                is_last,
            )?;
            let entry_index_max = replay.apply(&segment.path, &scanned.records)?;
            if is_last {
                active = repair_last(&disk, &dir, &segment.path, &scanned, bytes.len())?;
            }
            if !is_last || active.is_some() {
                let path = segment.path.clone();
                segments.push(SegmentInfo {
                    seq: segment.seq,
                    path,
                    entry_index_max,
                });
            }
        }
        let recovered = replay.finish(&dir)?;
        let wal = Wal::resume(disk, dir, options, segments, active, &recovered)?;
        wal.check_invariants();
        Ok((wal, recovered))
    }

    /// Builds the writer over recovered state; starts a new segment if the last one was
    /// removed by repair (or there was none), or appends to it otherwise.
    fn resume(
        disk: D,
        dir: PathBuf,
        options: WalOptions,
        mut segments: Vec<SegmentInfo>,
        active: Option<(D::File, u64)>,
        recovered: &Recovered,
    ) -> Result<Wal<D>, WalError> {
        let mut window = LogWindow::default();
        for entry in &recovered.entries {
            window
                .push(entry.index, entry.term, recovered.snapshot.index)
                .unwrap();
        }
        let last_index = window.last_index().unwrap_or(recovered.snapshot.index);
        let (active, active_bytes, fresh) = match active {
            Some((file, bytes)) => (file, bytes, false),
            None => match segments.last() {
                // Repair removed a headerless last segment: the one before is complete.
                Some(previous) => {
                    let path = previous.path.clone();
                    let file = disk
                        .open_append(&path)
                        .map_err(|e| WalError::io(&path, e))?;
                    let bytes = disk.read(&path).map_err(|e| WalError::io(&path, e))?.len();
                    (file, bytes as u64, false)
                }
                None => {
                    let (file, segment) = create_segment(&disk, &dir, 0, last_index.next())?;
                    info!(file = %segment.path.display(), "created new wal");
                    segments.push(segment);
                    (file, 0, true)
                }
            },
        };
        let mut wal = Wal {
            disk,
            dir,
            options,
            segments,
            active,
            active_bytes,
            buffer: Vec::new(),
            unsynced: false,
            hard_state: recovered.hard_state,
            snapshot: recovered.snapshot.clone(),
            window,
            poisoned: None,
            written_bytes: 0,
        };
        if fresh {
            wal.write_head()?;
            wal.sync()?;
        }
        Ok(wal)
    }
}

/// The segment files of `dir`, by seq, checked to be consecutive. Other files are ignored.
fn list_segments<D: Disk>(disk: &D, dir: &Path) -> Result<Vec<Found>, WalError> {
    let names = disk.list(dir).map_err(|e| WalError::io(dir, e))?;
    let mut found: Vec<Found> = names
        .iter()
        .filter_map(|name| {
            let (seq, first_index) = parse_segment_name(name)?;
            Some(Found {
                seq,
                first_index,
                path: dir.join(name),
            })
        })
        .collect();
    found.sort_by_key(|segment| segment.seq);
    for pair in found.windows(2) {
        if pair[0].seq + 1 != pair[1].seq {
            let reason = format!(
                "{} is followed by {}",
                pair[0].path.display(),
                pair[1].path.display()
            );
            return Err(WalError::SegmentGap {
                dir: dir.to_path_buf(),
                reason,
            });
        }
    }
    Ok(found)
}

/// Cuts the torn tail of the last segment, durably. Returns the file opened for appending
/// and its length, or `None` if nothing valid was left and the file was removed.
fn repair_last<D: Disk>(
    disk: &D,
    dir: &Path,
    path: &Path,
    scanned: &ScannedSegment,
    file_bytes: usize,
) -> Result<Option<(D::File, u64)>, WalError> {
    let io = |e| WalError::io(path, e);
    if scanned.records.is_empty() {
        warn!(file = %path.display(), file_bytes, "removing last wal segment: no valid header");
        disk.remove(path).map_err(io)?;
        disk.sync_dir(dir).map_err(|e| WalError::io(dir, e))?;
        return Ok(None);
    }
    let mut file = disk.open_append(path).map_err(io)?;
    if scanned.valid_bytes < file_bytes as u64 {
        file.truncate(scanned.valid_bytes).map_err(io)?;
        file.sync_data().map_err(io)?;
    }
    Ok(Some((file, scanned.valid_bytes)))
}

impl Replay {
    /// Replays one segment's records; returns the highest entry index it holds.
    fn apply(&mut self, file: &Path, records: &[(u64, Record)]) -> Result<Option<Index>, WalError> {
        let mut entry_index_max = None;
        for (offset, record) in records {
            match record {
                Record::SegmentHeader { .. } if *offset == 0 => {}
                Record::SegmentHeader { .. } => {
                    return Err(WalError::Corrupt {
                        file: file.to_path_buf(),
                        offset: *offset,
                        reason: "segment header in the middle of a segment".to_string(),
                    });
                }
                Record::Entry(entry) => {
                    entry_index_max = entry_index_max.max(Some(entry.index));
                    let snapshot_index = self.snapshot.index;
                    self.window
                        .push(entry.index, entry.clone(), snapshot_index)
                        .map_err(|reason| WalError::Corrupt {
                            file: file.to_path_buf(),
                            offset: *offset,
                            reason,
                        })?;
                }
                Record::HardState(hard_state) => self.hard_state = *hard_state,
                // Segment heads repeat the current marker; an older one changes nothing.
                Record::Snapshot(meta) if meta.index >= self.snapshot.index => {
                    self.window.apply_snapshot(meta.index, meta.term);
                    self.snapshot = meta.clone();
                }
                Record::Snapshot(_) => {}
            }
        }
        Ok(entry_index_max)
    }

    /// Checks that the entries follow the snapshot and returns the recovered state.
    fn finish(self, dir: &Path) -> Result<Recovered, WalError> {
        if let Some(first) = self.window.first_index() {
            if first != self.snapshot.index.next() {
                return Err(WalError::MissingEntries {
                    dir: dir.to_path_buf(),
                    snapshot_index: self.snapshot.index.0,
                    first_entry_index: first.0,
                });
            }
        }
        let entries = self.window.into_items();
        Ok(Recovered {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            entries,
        })
    }
}
