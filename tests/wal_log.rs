//! The WAL's normal life: round trips, group commit, conflicting suffixes, segment release,
//! failure handling, and the same on real files.
//!
//! Each test writes through `Wal`, reopens (often after a `MemDisk` crash, so only synced
//! bytes count), and checks the recovered state record for record.

mod wal_support;

use bytes::Bytes;
use raftkv::raft::{ConfState, HardState, Index, NodeId, SnapshotMetadata, Term};
use raftkv::wal::{Disk, DiskFile, FsDisk, MemDisk, Recovered, Wal, WalError, WalOptions};
use wal_support::*;

#[test]
fn round_trip_of_entries_hard_state_and_snapshot_marker() {
    let disk = MemDisk::new();
    let (mut wal, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(
        recovered,
        Recovered::default(),
        "a new wal recovers nothing"
    );
    let mut conf_state = ConfState::default();
    conf_state.voters.extend([NodeId(1), NodeId(2), NodeId(3)]);
    let snapshot = SnapshotMetadata {
        index: Index(5),
        term: Term(1),
        conf_state,
    };
    wal.append(&entries(1..=20, 1)).unwrap();
    wal.save_snapshot(&snapshot).unwrap();
    wal.set_hard_state(&hard_state(12)).unwrap();
    wal.sync().unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Index(6), Index(20)));
    drop(wal);

    let (mut wal, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.snapshot, snapshot);
    assert_eq!(recovered.hard_state, hard_state(12));
    assert_eq!(recovered.entries, entries(6..=20, 1));
    wal.append(&entries(21..=22, 2)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(
        recovered.entries.last(),
        Some(&entry(22, 2)),
        "appending after reopen works"
    );
}

#[test]
fn group_commit_pays_one_fdatasync_for_many_appends() {
    let disk = MemDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    let syncs_before = disk.sync_count();
    for index in 1..=100 {
        wal.append(&[entry(index, 1)]).unwrap();
        wal.set_hard_state(&hard_state(index)).unwrap();
    }
    assert_eq!(
        disk.sync_count(),
        syncs_before,
        "appends alone must not sync"
    );
    wal.sync().unwrap();
    assert_eq!(
        disk.sync_count(),
        syncs_before + 1,
        "one sync for the whole batch"
    );
    wal.sync().unwrap();
    assert_eq!(
        disk.sync_count(),
        syncs_before + 1,
        "a sync with nothing new costs nothing"
    );
    disk.crash();
    let (_, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.entries, entries(1..=100, 1));
    assert_eq!(recovered.hard_state, hard_state(100));
}

#[test]
fn a_conflicting_suffix_is_replaced_across_segments() {
    let disk = MemDisk::new();
    let mut wal = write_log(&disk, small_segments(), 40);
    let segments_before = segments(&disk).len();
    assert!(
        segments_before >= 3,
        "the test needs entry 25 in an older segment"
    );
    wal.append(&entries(25..=30, 2)).unwrap();
    assert_eq!(wal.last_index(), Index(30));
    wal.sync().unwrap();
    drop(wal);
    let (mut wal, recovered) = open(&disk, small_segments()).unwrap();
    let mut expected = entries(1..=24, 1);
    expected.extend(entries(25..=30, 2));
    assert_eq!(recovered.entries, expected);
    // A second conflict, this time inside the entries the first one wrote.
    wal.append(&entries(28..=28, 3)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&disk, small_segments()).unwrap();
    expected.truncate(27);
    expected.push(entry(28, 3));
    assert_eq!(recovered.entries, expected);
}

#[test]
fn release_deletes_old_segments_but_keeps_what_recovery_needs() {
    let disk = MemDisk::new();
    let mut wal = write_log(&disk, small_segments(), 100);
    let segments_before = segments(&disk).len();
    // Without a snapshot marker nothing may go, whatever index is asked for.
    wal.release_to(Index(90)).unwrap();
    assert_eq!(segments(&disk).len(), segments_before);
    let snapshot = SnapshotMetadata {
        index: Index(60),
        term: Term(1),
        conf_state: ConfState::default(),
    };
    wal.save_snapshot(&snapshot).unwrap();
    wal.sync().unwrap();
    let dir_syncs = disk.dir_sync_count();
    wal.release_to(Index(1000)).unwrap();
    let remaining = segments(&disk);
    let removed = (segments_before - remaining.len()) as u64;
    assert_eq!(
        disk.dir_sync_count(),
        dir_syncs + removed,
        "each removal is made durable"
    );
    assert!(
        remaining.len() < segments_before,
        "old segments must be removed"
    );
    assert_eq!(wal.segment_count(), remaining.len());
    let first_name = remaining[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        !first_name.starts_with("0000000000000000-"),
        "segment 0 must be gone"
    );
    drop(wal);
    disk.crash();
    let (_, recovered) = open(&disk, small_segments()).unwrap();
    assert_eq!(recovered.snapshot, snapshot);
    assert_eq!(
        recovered.hard_state,
        hard_state(50),
        "the head of a segment repeats it"
    );
    assert_eq!(recovered.entries, entries(61..=100, 1));
}

#[test]
fn an_io_failure_poisons_the_wal() {
    let disk = MemDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    wal.append(&entries(1..=3, 1)).unwrap();
    disk.crash(); // every handle the wal holds is now dead
    assert!(matches!(wal.sync(), Err(WalError::Io { .. })));
    assert!(matches!(
        wal.append(&entries(4..=4, 1)),
        Err(WalError::Poisoned { .. })
    ));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
}

#[test]
fn an_oversized_entry_is_refused_and_nothing_of_its_batch_is_written() {
    let disk = MemDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    let mut batch = entries(1..=2, 1);
    batch[1].data = Bytes::from(vec![7u8; raftkv::wal::RECORD_PAYLOAD_BYTES_MAX]);
    assert!(matches!(
        wal.append(&batch),
        Err(WalError::EntryTooLarge { index: 2, .. })
    ));
    assert_eq!(wal.last_index(), Index(0));
    wal.append(&entries(1..=1, 1)).unwrap();
    wal.sync().unwrap();
}

#[test]
fn real_files_round_trip_and_repair_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        segment_bytes_max: 2048,
        buffer_bytes_max: 4096,
    };
    let (mut wal, _) = Wal::open(FsDisk, dir.path(), options.clone()).unwrap();
    wal.append(&entries(1..=100, 1)).unwrap();
    wal.set_hard_state(&hard_state(50)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let mut names = FsDisk.list(dir.path()).unwrap();
    names.sort();
    assert!(names.len() > 1, "segments: {names:?}");
    let last = dir.path().join(names.last().unwrap());
    let mut file = FsDisk.open_append(&last).unwrap();
    file.append(b"\x20\x00\x00\x00torn").unwrap();
    file.sync_data().unwrap();
    let (_, recovered) = Wal::open(FsDisk, dir.path(), options.clone()).unwrap();
    assert_eq!(recovered.entries, entries(1..=100, 1));
    assert_eq!(recovered.hard_state, hard_state(50));
    let nested = dir.path().join("member").join("wal");
    let (mut wal, _) = Wal::open(FsDisk, &nested, options.clone()).unwrap();
    wal.append(&entries(1..=3, 1)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = Wal::open(FsDisk, &nested, options).unwrap();
    assert_eq!(
        recovered.entries,
        entries(1..=3, 1),
        "a wal in a new directory works"
    );
}

#[test]
fn the_file_layout_matches_the_module_docs_example() {
    let disk = MemDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    wal.append(&entries(1..=2, 1)).unwrap();
    wal.set_hard_state(&HardState {
        term: Term(1),
        vote: Some(NodeId(1)),
        commit: Index(1),
    })
    .unwrap();
    wal.sync().unwrap();
    let files = segments(&disk);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        (files.len(), name.as_str()),
        (1, "0000000000000000-0000000000000001.wal")
    );
    let bytes = disk.file_bytes(&files[0]).unwrap();
    let data_bytes = entry(1, 1).data.len() + entry(2, 1).data.len();
    // header (9 + 24), two entries (9 + 17 + data each), hard state (9 + 24)
    assert_eq!(bytes.len(), 33 + 2 * 26 + data_bytes + 33);
    assert_eq!(&bytes[0..4], &24u32.to_le_bytes(), "header payload length");
    assert_eq!(bytes[8], 1, "header type");
    assert_eq!(&bytes[9..17], b"rkvwal\x00\x01", "magic and version");
    assert_eq!(bytes[33 + 8], 2, "entry type");
    assert_eq!(bytes[bytes.len() - 33 + 8], 3, "hard state type");
}
