//! Recovery of the WAL from what a crash or a bad disk leaves behind.
//!
//! Each test writes a log through `Wal`, damages or crashes the (in-memory or real) disk in
//! one specific way, reopens, and checks that recovery returns exactly the records it should:
//! torn tails of the last segment are cut and everything before them survives; damage
//! anywhere else is refused with an error naming the file and the byte offset.

mod wal_support;

use raftkv::raft::HardState;
use raftkv::wal::{Disk, MemDisk, WalError, WalOptions};
use wal_support::*;

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
