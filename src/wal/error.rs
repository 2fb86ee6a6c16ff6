//! The errors the WAL reports: what a disk can do to us (IO failures, corrupt or missing
//! records) and what a caller can ask for that the format cannot hold (an oversized entry).
//!
//! Bugs in the caller (appending with a gap, a snapshot older than the last one) are not
//! errors here: they are `assert!`s in `writer.rs`. Who calls: every public `Wal` method.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong opening or writing a WAL that is not a bug in our caller.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The disk refused an operation. After this the `Wal` refuses further writes (see
    /// [`WalError::Poisoned`]): a failed `fdatasync` may have dropped dirty pages, so retrying
    /// could report success for data that is gone.
    #[error("wal io error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// What the operating system (or the test disk) said.
        source: io::Error,
    },
    /// A record failed its checks somewhere recovery cannot repair: in a segment that is not
    /// the last one, or in the last one but followed by a valid record (so it is not a torn
    /// tail). The node must not start: an operator has to look at `file` at `offset`.
    #[error("corrupt wal record in {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the bad record's frame in `file`.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// The segment files do not form a consecutive sequence (a segment was deleted by hand,
    /// or a release went wrong), so entries may be missing.
    #[error("wal segments in {} are not consecutive: {reason}", dir.display())]
    SegmentGap {
        /// The WAL directory.
        dir: PathBuf,
        /// Which sequence numbers are missing.
        reason: String,
    },
    /// After replay, the first entry is not the one right after the latest snapshot marker:
    /// the entries in between were released (or lost) although no snapshot covers them.
    #[error(
        "wal in {} is missing entries: snapshot ends at index {snapshot_index} \
         but the first entry is {first_entry_index}",
        dir.display()
    )]
    MissingEntries {
        /// The WAL directory.
        dir: PathBuf,
        /// Index of the latest snapshot marker (0 without one).
        snapshot_index: u64,
        /// Index of the first entry recovered.
        first_entry_index: u64,
    },
    /// An entry's payload is larger than a record may hold
    /// ([`RECORD_PAYLOAD_BYTES_MAX`](crate::wal::RECORD_PAYLOAD_BYTES_MAX)). Nothing of
    /// the batch was written.
    #[error("wal entry at index {index} has {data_bytes} bytes of data, over the record limit")]
    EntryTooLarge {
        /// The entry's index.
        index: u64,
        /// Its payload size.
        data_bytes: usize,
    },
    /// An earlier write or sync failed; the `Wal` refuses all further work. Reopen it (which
    /// re-reads what is actually on disk) or stop the node.
    #[error("wal refuses writes after an earlier failure: {reason}")]
    Poisoned {
        /// The earlier error, as text.
        reason: String,
    },
}

impl WalError {
    /// Wraps an IO error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> WalError {
        WalError::Io {
            path: path.into(),
            source,
        }
    }
}
