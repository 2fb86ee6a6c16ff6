//! The write-ahead log: the durable record of Raft entries, hard state and snapshot markers.
//!
//! The server's raft loop owns one [`Wal`]. For each `Ready` it writes the snapshot marker
//! ([`Wal::save_snapshot`]), the entries ([`Wal::append`]) and the hard state
//! ([`Wal::set_hard_state`]), then calls [`Wal::sync`] once (if `must_sync`) before sending
//! `persisted_messages`: one `fdatasync` for the whole batch (group commit). On start,
//! [`Wal::open`] returns the [`Recovered`] hard state, latest snapshot marker and entries.
//! The WAL must not interpret entry data, apply anything, or talk to the network; it does
//! all its IO through the [`Disk`] trait so tests can crash a [`MemDisk`].
//!
//! # Files
//!
//! A directory of segment files `{seq:016x}-{first_index:016x}.wal` (hex), `seq` counting
//! from 0 without gaps, `first_index` the index the next entry had when the segment was cut.
//! Segments are append-only; a new one is cut when the active one reaches
//! [`WalOptions::segment_bytes_max`] (64 MiB by default). The old one is synced before the
//! new one is created, so only the last segment can ever hold unsynced bytes.
//!
//! # Records
//!
//! Every segment is a sequence of records, each framed as (little-endian):
//!
//! ```text
//!  0        4        8      9                     9 + len
//!  +--------+--------+------+---------------------+
//!  |  len   | crc32c | type |  payload (len bytes) |
//!  |  u32   |  u32   |  u8  |                      |
//!  +--------+--------+------+---------------------+
//!  crc32c = CRC32C(len bytes ++ type ++ payload); len <= RECORD_PAYLOAD_BYTES_MAX
//! ```
//!
//! | type | record         | payload                                                      |
//! |------|----------------|--------------------------------------------------------------|
//! | 1    | segment header | magic `"rkvwal\0"` + version `1` (8), seq u64, first_index u64 |
//! | 2    | entry          | term u64, index u64, kind u8 (0 normal, 1 conf change), data |
//! | 3    | hard state     | term u64, vote u64 (0 = none), commit u64                    |
//! | 4    | snapshot marker| index u64, term u64, voters (u32 count, u64 ids), learners (same) |
//!
//! A segment starts with its header, then the hard state and snapshot marker current when it
//! was cut (when not default), so that replay can start at any segment once older ones are
//! released. Example, a fresh WAL after `append([1, 2])`, `set_hard_state(t1, v1, c1)`,
//! `sync()`: `0000000000000000-0000000000000001.wal` = header(0, 1), entry 1, entry 2,
//! hard state.
//!
//! # Replay
//!
//! Records are replayed in file order: the latest hard state wins; the latest snapshot
//! marker wins (one at a lower index than the current is ignored); an entry record at index
//! `i` replaces the entries from `i` on (that is how a conflicting suffix is truncated: by
//! writing, never by rewriting files). The exact rules, including what a snapshot marker does
//! to the entries, are in `window.rs`. The recovered entries must follow the snapshot
//! marker without a gap.
//!
//! # Recovery rules
//!
//! - Segments must be consecutive, and each header must match its file name.
//! - In every segment but the last, every byte must belong to a valid record.
//! - In the last segment, a record that is cut short, has a bad length or a bad checksum
//!   (a torn write, or a zero-filled tail) is taken as the end of the log **if no valid
//!   record follows it anywhere in the file**: the file is truncated there and synced (or
//!   removed, if not even its header survived), with a `warn` log.
//! - Anything else (a bad record followed by valid ones, a record whose checksum is right but
//!   whose payload is not, an entry index that leaves a gap) is refused with
//!   [`WalError::Corrupt`], whose message names the file and the byte offset of the frame.
//!   The node must not start on a log it cannot trust.
//!
//! Limit: a real disk may persist unsynced pages out of order, leaving a hole followed by
//! later records of the same unsynced batch; such a log is refused rather than guessed at.
//!
//! # The durability rule
//!
//! [`Wal::release_to`]`(i)` deletes whole segments whose entries are all below `i` (and never
//! entries above the latest snapshot marker). Call it only once the state machine (the MVCC
//! backend) is durably flushed at or beyond `i - 1`: after a crash the node replays only the
//! entries the WAL still has, on top of what the backend made durable. `release_to` syncs
//! the WAL first, so the marker and segment head that make the release safe are durable
//! before any file goes.
//!
//! After any IO error the `Wal` is poisoned ([`WalError::Poisoned`]): a failed fdatasync may
//! have dropped dirty pages, so retrying could claim durability that does not exist. Stop
//! the node, or reopen the WAL to read what is actually on disk.
#![deny(missing_docs)]

mod disk;
mod error;
mod mem_disk;
mod open;
mod record;
mod segment;
mod window;
mod writer;

pub use disk::{Disk, DiskFile, FsDisk, FsFile};
pub use error::WalError;
pub use mem_disk::{MemDisk, MemFile};
pub use open::Recovered;
pub use record::RECORD_PAYLOAD_BYTES_MAX;
pub use writer::{Wal, WalOptions};
