//! Helpers shared by the WAL integration tests: sample entries, a small-segment setup, and
//! the MemDisk plumbing to open, list, copy and inspect a WAL.
// Each test crate uses only some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftkv::raft::{Entry, EntryKind, HardState, Index, NodeId, Term};
use raftkv::wal::{Disk, DiskFile, MemDisk, Recovered, Wal, WalError, WalOptions};

pub const DIR: &str = "/wal";

/// Bytes of the frame of an entry record with `data_bytes` of data.
pub fn entry_record_bytes(data_bytes: usize) -> usize {
    9 + 17 + data_bytes
}

pub fn entry(index: u64, term: u64) -> Entry {
    let data = format!("entry {index} of term {term}").into_bytes();
    Entry {
        term: Term(term),
        index: Index(index),
        kind: EntryKind::Normal,
        data: Bytes::from(data),
    }
}

pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|index| entry(index, term)).collect()
}

pub fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes_max: 400,
        buffer_bytes_max: 64,
    }
}

pub fn open(disk: &MemDisk, options: WalOptions) -> Result<(Wal<MemDisk>, Recovered), WalError> {
    Wal::open(disk.clone(), DIR, options)
}

pub fn segments(disk: &MemDisk) -> Vec<PathBuf> {
    disk.paths_in(Path::new(DIR))
}

/// A log of entries 1..=n (term 1) and hard state (term 1, vote 1, commit n / 2), synced.
pub fn write_log(disk: &MemDisk, options: WalOptions, n: u64) -> Wal<MemDisk> {
    let (mut wal, _) = open(disk, options).unwrap();
    wal.append(&entries(1..=n, 1)).unwrap();
    wal.set_hard_state(&hard_state(n / 2)).unwrap();
    wal.sync().unwrap();
    wal
}

pub fn hard_state(commit: u64) -> HardState {
    HardState {
        term: Term(1),
        vote: Some(NodeId(1)),
        commit: Index(commit),
    }
}

pub fn corrupt_error(
    result: Result<(Wal<MemDisk>, Recovered), WalError>,
) -> (PathBuf, u64, String) {
    match result {
        Err(error @ WalError::Corrupt { .. }) => {
            let text = error.to_string();
            let WalError::Corrupt { file, offset, .. } = error else {
                unreachable!()
            };
            (file, offset, text)
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok((_, recovered)) => panic!(
            "expected Corrupt, recovered {} entries",
            recovered.entries.len()
        ),
    }
}

/// A separate disk holding the same live files as `disk` (made durable).
pub fn copy_of(disk: &MemDisk) -> MemDisk {
    let copy = MemDisk::new();
    for path in segments(disk) {
        let mut file = copy.create(&path).unwrap();
        file.append(&disk.file_bytes(&path).unwrap()).unwrap();
        file.sync_data().unwrap();
    }
    copy.sync_dir(Path::new(DIR)).unwrap();
    copy
}
