//! Segment files: their names, and the scan that turns a segment's bytes into records while
//! deciding what is a torn tail (to cut) and what is corruption (to refuse).
//!
//! A segment is named `{seq:016x}-{first_index:016x}.wal`: `seq` counts segments from 0
//! with no gaps; `first_index` is the index the next entry had when the segment was cut
//! (a debugging aid: a later conflicting append may write lower indexes into it). The
//! first record repeats both in a `SegmentHeader`. This file knows nothing of replay rules;
//! it is called by `open.rs`.

use std::path::Path;

use tracing::warn;

use super::error::WalError;
use super::record::{self, Record, FRAME_HEADER_BYTES};
use crate::raft::Index;

/// The file name of segment `seq` cut when the next entry index was `first_index`.
pub(crate) fn segment_name(seq: u64, first_index: Index) -> String {
    format!("{seq:016x}-{:016x}.wal", first_index.0)
}

/// The `(seq, first_index)` a segment file name stands for; `None` for other files.
pub(crate) fn parse_segment_name(name: &str) -> Option<(u64, Index)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first_index) = stem.split_once('-')?;
    if seq.len() != 16 || first_index.len() != 16 {
        return None;
    }
    let seq = u64::from_str_radix(seq, 16).ok()?;
    Some((seq, Index(u64::from_str_radix(first_index, 16).ok()?)))
}

/// The records of one segment, with where each starts.
#[derive(Debug)]
pub(crate) struct ScannedSegment {
    /// `(byte offset, record)` in file order, the header first.
    pub records: Vec<(u64, Record)>,
    /// Length of the valid prefix; less than the file's length when a torn tail was found.
    pub valid_bytes: u64,
}

/// Decodes every record of a segment.
///
/// In a segment that is not the last (`is_last == false`) every byte must belong to a
/// valid record. In the last one, a bad frame may be a write torn by a crash: it is cut
/// (`valid_bytes` stops before it) unless a valid record follows somewhere after it, which
/// no torn append can produce. A payload that passes its checksum yet does not decode is
/// never torn. The first record must be a header naming `seq` and `first_index`.
pub(crate) fn scan(
    bytes: &[u8],
    file: &Path,
    seq: u64,
    first_index: Index,
    is_last: bool,
) -> Result<ScannedSegment, WalError> {
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        file: file.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match record::decode(bytes, offset) {
            Ok((record, next)) => {
                records.push((offset as u64, record));
                offset = next;
            }
            Err(error) if is_last && error.could_be_torn() => {
                if let Some(valid_at) = find_valid_record(bytes, offset + 1) {
                    let reason = format!(
                        "{}, yet a valid record follows at offset {valid_at}",
                        error.describe()
                    );
                    return Err(corrupt(offset, reason));
                }
                warn!(
                    file = %file.display(),
                    offset,
                    cut_bytes = bytes.len() - offset,
                    reason = %error.describe(),
                    "cutting torn tail of the last wal segment"
                );
                break;
            }
            Err(error) => return Err(corrupt(offset, error.describe())),
        }
    }
    check_header(&records, seq, first_index).map_err(|reason| corrupt(0, reason))?;
    Ok(ScannedSegment {
        records,
        valid_bytes: offset as u64,
    })
}

/// Checks that the first record is the header the file name promises. An empty record list
/// passes: only a last segment torn before its header got out can have one.
fn check_header(records: &[(u64, Record)], seq: u64, first_index: Index) -> Result<(), String> {
    match records.first() {
        None => Ok(()),
        Some((
            _,
            Record::SegmentHeader {
                seq: s,
                first_index: f,
            },
        )) if *s == seq && *f == first_index => Ok(()),
        Some((
            _,
            Record::SegmentHeader {
                seq: s,
                first_index: f,
            },
        )) => Err(format!(
            "header says segment {s} from index {f}, file name says {seq} from index {first_index}"
        )),
        Some((_, other)) => Err(format!("segment starts with {other:?} instead of a header")),
    }
}

/// The first offset at or after `from` where a whole valid record starts, if any.
///
/// Only offsets whose type byte is a known record type are checked in full, so a zero-filled
/// or random tail costs about one comparison per byte.
fn find_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    let last_start = bytes.len().checked_sub(FRAME_HEADER_BYTES)?;
    (from..=last_start)
        .filter(|&offset| record::is_record_type(bytes[offset + 8]))
        .find(|&offset| record::decode(bytes, offset).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Scanning never panics, whatever the bytes: it is the gateway for disk data.
        #[test]
        fn scanning_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            is_last in proptest::prelude::any::<bool>(),
        ) {
            let _ = scan(&bytes, Path::new("/w/x.wal"), 0, Index(1), is_last);
        }

        /// Whatever follows a valid prefix in the last segment, the scan either keeps every
        /// record of the prefix or refuses the segment: it never silently drops one.
        #[test]
        fn a_valid_prefix_survives_any_tail(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
        ) {
            let mut bytes = Vec::new();
            record::encode(&Record::SegmentHeader { seq: 0, first_index: Index(1) }, &mut bytes);
            let prefix = bytes.len() as u64;
            bytes.extend_from_slice(&tail);
            if let Ok(scanned) = scan(&bytes, Path::new("/w/x.wal"), 0, Index(1), true) {
                proptest::prop_assert!(scanned.valid_bytes >= prefix);
            }
        }
    }

    #[test]
    fn names_round_trip_and_sort_by_seq() {
        let name = segment_name(10, Index(0xabc));
        assert_eq!(name, "000000000000000a-0000000000000abc.wal");
        assert_eq!(parse_segment_name(&name), Some((10, Index(0xabc))));
        assert!(segment_name(9, Index(99)) < segment_name(10, Index(1)));
        assert_eq!(parse_segment_name("0a-0b.wal"), None);
        assert_eq!(
            parse_segment_name("000000000000000a-0000000000000abc.tmp"),
            None
        );
    }
}
