//! Recovery of the WAL from what a crash or a bad disk leaves behind.
//!
//! Each test writes a log through `Wal`, damages or crashes the (in-memory or real) disk in
//! one specific way, reopens, and checks that recovery returns exactly the records it should:
//! torn tails of the last segment are cut and everything before them survives; damage
//! anywhere else is refused with an error naming the file and the byte offset.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftkv::raft::{ConfState, Entry, EntryKind, HardState, Index, NodeId, SnapshotMetadata, Term};
use raftkv::wal::{Disk, DiskFile, FsDisk, MemDisk, Recovered, Wal, WalError, WalOptions};

const DIR: &str = "/wal";

/// Bytes of the frame of an entry record with `data_bytes` of data.
fn entry_record_bytes(data_bytes: usize) -> usize {
    9 + 17 + data_bytes
}

fn entry(index: u64, term: u64) -> Entry {
    let data = format!("entry {index} of term {term}").into_bytes();
    Entry {
        term: Term(term),
        index: Index(index),
        kind: EntryKind::Normal,
        data: Bytes::from(data),
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|index| entry(index, term)).collect()
}

fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes_max: 400,
        buffer_bytes_max: 64,
    }
}

fn open(disk: &MemDisk, options: WalOptions) -> Result<(Wal<MemDisk>, Recovered), WalError> {
    Wal::open(disk.clone(), DIR, options)
}

fn segments(disk: &MemDisk) -> Vec<PathBuf> {
    disk.paths_in(Path::new(DIR))
}

/// A log of entries 1..=n (term 1) and hard state (term 1, vote 1, commit n / 2), synced.
fn write_log(disk: &MemDisk, options: WalOptions, n: u64) -> Wal<MemDisk> {
    let (mut wal, _) = open(disk, options).unwrap();
    wal.append(&entries(1..=n, 1)).unwrap();
    wal.set_hard_state(&hard_state(n / 2)).unwrap();
    wal.sync().unwrap();
    wal
}

fn hard_state(commit: u64) -> HardState {
    HardState {
        term: Term(1),
        vote: Some(NodeId(1)),
        commit: Index(commit),
    }
}

fn corrupt_error(result: Result<(Wal<MemDisk>, Recovered), WalError>) -> (PathBuf, u64, String) {
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
    wal.release_to(Index(1000)).unwrap();
    let remaining = segments(&disk);
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
fn a_torn_last_record_is_cut_at_every_byte_offset() {
    let reference = MemDisk::new();
    write_log(&reference, small_segments(), 30);
    let mut wal = open(&reference, small_segments()).unwrap().0;
    wal.append(&[entry(31, 1)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let last = segments(&reference).pop().unwrap();
    let bytes = reference.file_bytes(&last).unwrap();
    let record_start = bytes.len() - entry_record_bytes(entry(31, 1).data.len());
    for cut in record_start..bytes.len() {
        let disk = copy_of(&reference);
        disk.set_file_bytes(&last, bytes[..cut].to_vec());
        let (mut wal, recovered) = open(&disk, small_segments()).unwrap();
        assert_eq!(recovered.entries, entries(1..=30, 1), "cut at byte {cut}");
        assert_eq!(
            disk.file_bytes(&last).unwrap().len(),
            record_start,
            "tail truncated"
        );
        wal.append(&[entry(31, 2)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, recovered) = open(&disk, small_segments()).unwrap();
        assert_eq!(
            recovered.entries.last(),
            Some(&entry(31, 2)),
            "cut at byte {cut}"
        );
    }
}

#[test]
fn a_zero_filled_tail_is_cut() {
    let disk = MemDisk::new();
    drop(write_log(&disk, small_segments(), 30));
    let last = segments(&disk).pop().unwrap();
    let mut bytes = disk.file_bytes(&last).unwrap();
    let valid = bytes.len();
    bytes.extend_from_slice(&[0; 4096]);
    disk.set_file_bytes(&last, bytes);
    let (_, recovered) = open(&disk, small_segments()).unwrap();
    assert_eq!(recovered.entries, entries(1..=30, 1));
    assert_eq!(disk.file_bytes(&last).unwrap().len(), valid);
}

#[test]
fn a_bit_flip_in_the_last_record_of_the_last_segment_is_repaired() {
    let reference = MemDisk::new();
    drop(write_log(&reference, WalOptions::default(), 10));
    let last = segments(&reference).pop().unwrap();
    let bytes = reference.file_bytes(&last).unwrap();
    // The hard state record (9 + 24 bytes) is the last one.
    let record_start = bytes.len() - 33;
    for bit in 0..33 * 8 {
        let disk = copy_of(&reference);
        let mut flipped = bytes.clone();
        flipped[record_start + bit / 8] ^= 1 << (bit % 8);
        disk.set_file_bytes(&last, flipped);
        let (_, recovered) = open(&disk, WalOptions::default()).unwrap();
        assert_eq!(recovered.entries, entries(1..=10, 1), "bit {bit}");
        assert_eq!(
            recovered.hard_state,
            HardState::default(),
            "bit {bit}: the record is gone"
        );
    }
}

#[test]
fn a_bit_flip_in_an_earlier_segment_is_refused_with_file_and_offset() {
    let disk = MemDisk::new();
    drop(write_log(&disk, small_segments(), 40));
    let first = segments(&disk).remove(0);
    let mut bytes = disk.file_bytes(&first).unwrap();
    // Records in the first segment: header (9 + 24), then entries 1, 2, ... Flip a data byte
    // of the third entry.
    let third_entry_start = 33 + 2 * entry_record_bytes(entry(1, 1).data.len());
    bytes[third_entry_start + 30] ^= 0x10;
    disk.set_file_bytes(&first, bytes);
    let (file, offset, text) = corrupt_error(open(&disk, small_segments()));
    assert_eq!((file, offset), (first.clone(), third_entry_start as u64));
    assert!(text.contains(&first.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("offset {third_entry_start}")),
        "{text}"
    );
}

#[test]
fn a_bad_record_followed_by_valid_ones_in_the_last_segment_is_refused() {
    let disk = MemDisk::new();
    drop(write_log(&disk, WalOptions::default(), 10));
    let last = segments(&disk).pop().unwrap();
    let mut bytes = disk.file_bytes(&last).unwrap();
    let fifth_entry_start = 33 + 4 * entry_record_bytes(entry(1, 1).data.len());
    bytes[fifth_entry_start + 1] ^= 0x01; // the length field
    disk.set_file_bytes(&last, bytes);
    let (file, offset, text) = corrupt_error(open(&disk, WalOptions::default()));
    assert_eq!((file, offset), (last, fifth_entry_start as u64));
    assert!(text.contains("valid record follows"), "{text}");
}

#[test]
fn a_truncated_earlier_segment_is_refused() {
    let disk = MemDisk::new();
    drop(write_log(&disk, small_segments(), 40));
    let first = segments(&disk).remove(0);
    let bytes = disk.file_bytes(&first).unwrap();
    disk.set_file_bytes(&first, bytes[..bytes.len() - 3].to_vec());
    let (file, _, text) = corrupt_error(open(&disk, small_segments()));
    assert_eq!(file, first);
    assert!(text.contains("past the end"), "{text}");
}

#[test]
fn a_missing_middle_segment_is_refused() {
    let disk = MemDisk::new();
    drop(write_log(&disk, small_segments(), 40));
    let middle = segments(&disk)[1].clone();
    disk.remove(&middle).unwrap();
    match open(&disk, small_segments()) {
        Err(WalError::SegmentGap { reason, .. }) => assert!(reason.contains("is followed by")),
        Err(other) => panic!("expected SegmentGap, got {other}"),
        Ok(_) => panic!("opened a wal with a missing segment"),
    }
}

#[test]
fn a_crash_loses_unsynced_records_and_keeps_synced_ones() {
    let disk = MemDisk::new();
    // A tiny buffer so the unsynced records really reach the disk's volatile part.
    let options = WalOptions {
        segment_bytes_max: 1 << 20,
        buffer_bytes_max: 1,
    };
    let (mut wal, _) = open(&disk, options.clone()).unwrap();
    wal.append(&entries(1..=10, 1)).unwrap();
    wal.set_hard_state(&hard_state(5)).unwrap();
    wal.sync().unwrap();
    wal.append(&entries(11..=20, 1)).unwrap();
    wal.set_hard_state(&hard_state(15)).unwrap();
    let unsynced_len = disk.file_bytes(&segments(&disk)[0]).unwrap().len();
    disk.crash();
    let (_, recovered) = open(&disk, options).unwrap();
    assert_eq!(recovered.entries, entries(1..=10, 1));
    assert_eq!(recovered.hard_state, hard_state(5));
    assert!(disk.file_bytes(&segments(&disk)[0]).unwrap().len() < unsynced_len);
}

#[test]
fn a_crash_right_after_a_segment_cut_recovers_the_previous_segment() {
    let disk = MemDisk::new();
    let options = WalOptions {
        segment_bytes_max: 300,
        buffer_bytes_max: 1 << 20,
    };
    let (mut wal, _) = open(&disk, options.clone()).unwrap();
    let mut index = 0;
    while segments(&disk).len() < 2 {
        index += 1;
        wal.append(&[entry(index, 1)]).unwrap();
    }
    // The cut synced the old segment and created the new one; its header is still buffered.
    disk.crash();
    assert_eq!(disk.file_bytes(&segments(&disk)[1]).unwrap().len(), 0);
    let (mut wal, recovered) = open(&disk, options.clone()).unwrap();
    assert_eq!(recovered.entries, entries(1..=index - 1, 1));
    assert_eq!(segments(&disk).len(), 1, "the empty segment was removed");
    wal.append(&entries(index..=index + 20, 1)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&disk, options).unwrap();
    assert_eq!(recovered.entries, entries(1..=index + 20, 1));
}

#[test]
fn a_last_segment_with_a_torn_header_is_removed() {
    let disk = MemDisk::new();
    drop(write_log(&disk, small_segments(), 40));
    let mut all = segments(&disk);
    let last = all.pop().unwrap();
    let (_, before) = open(&copy_of(&disk), small_segments()).unwrap();
    disk.set_file_bytes(&last, disk.file_bytes(&last).unwrap()[..20].to_vec());
    let (mut wal, recovered) = open(&disk, small_segments()).unwrap();
    assert_eq!(segments(&disk), all, "the headerless segment is gone");
    // Whatever the removed segment held is lost; everything before it is intact.
    let kept = recovered.entries.len();
    assert!(kept > 0 && kept <= before.entries.len());
    assert_eq!(recovered.entries[..], before.entries[..kept]);
    wal.append(&entries(kept as u64 + 1..=kept as u64 + 5, 2))
        .unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&disk, small_segments()).unwrap();
    assert_eq!(recovered.entries.len(), kept + 5);
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

/// A separate disk holding the same live files as `disk` (made durable).
fn copy_of(disk: &MemDisk) -> MemDisk {
    let copy = MemDisk::new();
    for path in segments(disk) {
        let mut file = copy.create(&path).unwrap();
        file.append(&disk.file_bytes(&path).unwrap()).unwrap();
        file.sync_data().unwrap();
    }
    copy.sync_dir(Path::new(DIR)).unwrap();
    copy
}
