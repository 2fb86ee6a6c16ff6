//! Record framing and the hand-written encoding of the Raft types the WAL persists.
//!
//! A record is a frame around one typed payload (see the byte diagram in the module docs of
//! [`crate::wal`]). This file only turns values into bytes and back and checks the frame; it
//! does not know about segments, files or which record wins during replay. Called by
//! `segment.rs` (decoding while scanning) and `writer.rs` (encoding).

use bytes::Bytes;

use crate::raft::{ConfState, Entry, EntryKind, HardState, Index, NodeId, SnapshotMetadata, Term};

/// Bytes of the frame before the payload: length (4), CRC32C (4), record type (1).
pub(crate) const FRAME_HEADER_BYTES: usize = 9;

/// The largest payload one record may carry. An entry's payload is its data plus 17 bytes.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 << 20;

/// Bytes of an entry payload besides its data: term (8), index (8), kind (1).
pub(crate) const ENTRY_FIXED_BYTES: usize = 17;

/// Identifies a raftkv WAL segment and its format version (the last byte).
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"rkvwal\x00\x01";

const TYPE_SEGMENT_HEADER: u8 = 1;
const TYPE_ENTRY: u8 = 2;
const TYPE_HARD_STATE: u8 = 3;
const TYPE_SNAPSHOT: u8 = 4;

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// First record of every segment: names the segment so a renamed or misplaced file is
    /// caught.
    SegmentHeader {
        /// The segment's sequence number (as in its file name).
        seq: u64,
        /// The index the next entry had when the segment was cut (as in its file name).
        first_index: Index,
    },
    /// A log entry. A later entry record at index `i` replaces the entries from `i` on.
    Entry(Entry),
    /// The Raft hard state; the latest one wins.
    HardState(HardState),
    /// A snapshot marker: entries up to `index` are covered by a snapshot.
    Snapshot(SnapshotMetadata),
}

/// Why bytes at some offset are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The frame or its payload runs past the end of the bytes: a torn write, if at the tail.
    Truncated,
    /// The length field is over the limit, or the checksum does not match: a torn or
    /// zero-filled write if at the tail, corruption elsewhere.
    BadFrame(String),
    /// The checksum matches but the payload makes no sense: never a torn write.
    BadPayload(String),
}

impl DecodeError {
    /// Whether an incomplete write can explain this error (so a tail with it may be cut).
    pub(crate) fn could_be_torn(&self) -> bool {
        !matches!(self, DecodeError::BadPayload(_))
    }

    /// A sentence for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            DecodeError::Truncated => "record runs past the end of the file".to_string(),
            DecodeError::BadFrame(reason) | DecodeError::BadPayload(reason) => reason.clone(),
        }
    }
}

/// Whether `byte`, read where a frame's type byte would be, names a record type.
pub(crate) fn is_record_type(byte: u8) -> bool {
    (TYPE_SEGMENT_HEADER..=TYPE_SNAPSHOT).contains(&byte)
}

/// Appends the framed encoding of `record` to `buf` and returns the frame's length.
///
/// The caller must have checked that an entry's data fits (`RECORD_PAYLOAD_BYTES_MAX`).
pub(crate) fn encode(record: &Record, buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    buf.push(record_type(record));
    encode_payload(record, buf);
    let payload_bytes = buf.len() - start - FRAME_HEADER_BYTES;
    assert!(
        payload_bytes <= RECORD_PAYLOAD_BYTES_MAX,
        "record payload of {payload_bytes} bytes: the caller must check entry sizes"
    );
    buf[start..start + 4].copy_from_slice(&(payload_bytes as u32).to_le_bytes());
    let crc = frame_crc(&buf[start..start + 4], &buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    buf.len() - start
}

/// Decodes the record whose frame starts at `offset`; returns it with the offset after it.
pub(crate) fn decode(bytes: &[u8], offset: usize) -> Result<(Record, usize), DecodeError> {
    let rest = &bytes[offset..];
    if rest.len() < FRAME_HEADER_BYTES {
        return Err(DecodeError::Truncated);
    }
    let payload_bytes = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
    if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
        return Err(DecodeError::BadFrame(format!(
            "length field {payload_bytes} is over the record limit"
        )));
    }
    let end = FRAME_HEADER_BYTES + payload_bytes;
    if rest.len() < end {
        return Err(DecodeError::Truncated);
    }
    let stored_crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
    let crc = frame_crc(&rest[0..4], &rest[8..end]);
    if crc != stored_crc {
        return Err(DecodeError::BadFrame(format!(
            "checksum mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"
        )));
    }
    let record = decode_payload(rest[8], &rest[FRAME_HEADER_BYTES..end])?;
    Ok((record, offset + end))
}

/// CRC32C over the length field, the type byte and the payload.
fn frame_crc(length_field: &[u8], type_and_payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length_field), type_and_payload)
}

fn record_type(record: &Record) -> u8 {
    match record {
        Record::SegmentHeader { .. } => TYPE_SEGMENT_HEADER,
        Record::Entry(_) => TYPE_ENTRY,
        Record::HardState(_) => TYPE_HARD_STATE,
        Record::Snapshot(_) => TYPE_SNAPSHOT,
    }
}

fn encode_payload(record: &Record, buf: &mut Vec<u8>) {
    let put = |buf: &mut Vec<u8>, v: u64| buf.extend_from_slice(&v.to_le_bytes());
    match record {
        Record::SegmentHeader { seq, first_index } => {
            buf.extend_from_slice(&SEGMENT_MAGIC);
            put(buf, *seq);
            put(buf, first_index.0);
        }
        Record::Entry(entry) => {
            put(buf, entry.term.0);
            put(buf, entry.index.0);
            buf.push(match entry.kind {
                EntryKind::Normal => 0,
                EntryKind::ConfChange => 1,
            });
            buf.extend_from_slice(&entry.data);
        }
        Record::HardState(hard_state) => {
            put(buf, hard_state.term.0);
            put(buf, hard_state.vote.map_or(0, |node| node.0));
            put(buf, hard_state.commit.0);
        }
        Record::Snapshot(meta) => {
            put(buf, meta.index.0);
            put(buf, meta.term.0);
            for set in [&meta.conf_state.voters, &meta.conf_state.learners] {
                buf.extend_from_slice(&(set.len() as u32).to_le_bytes());
                for node in set {
                    put(buf, node.0);
                }
            }
        }
    }
}

fn decode_payload(record_type: u8, payload: &[u8]) -> Result<Record, DecodeError> {
    let mut reader = Reader { bytes: payload };
    let record = match record_type {
        TYPE_SEGMENT_HEADER => {
            if reader.take(8)? != SEGMENT_MAGIC {
                return Err(bad("segment header has an unknown magic or format version"));
            }
            let seq = reader.u64()?;
            Record::SegmentHeader {
                seq,
                first_index: Index(reader.u64()?),
            }
        }
        TYPE_ENTRY => Record::Entry(decode_entry(&mut reader)?),
        TYPE_HARD_STATE => {
            let term = Term(reader.u64()?);
            let vote = Some(reader.u64()?).filter(|&v| v != 0).map(NodeId);
            Record::HardState(HardState {
                term,
                vote,
                commit: Index(reader.u64()?),
            })
        }
        TYPE_SNAPSHOT => Record::Snapshot(decode_snapshot(&mut reader)?),
        other => return Err(bad(&format!("unknown record type {other}"))),
    };
    if !reader.bytes.is_empty() {
        return Err(bad("payload has trailing bytes"));
    }
    Ok(record)
}

fn decode_entry(reader: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    let term = Term(reader.u64()?);
    let index = Index(reader.u64()?);
    let kind = match reader.take(1)?[0] {
        0 => EntryKind::Normal,
        1 => EntryKind::ConfChange,
        other => return Err(bad(&format!("unknown entry kind {other}"))),
    };
    let data = Bytes::copy_from_slice(reader.take(reader.bytes.len())?);
    Ok(Entry {
        term,
        index,
        kind,
        data,
    })
}

fn decode_snapshot(reader: &mut Reader<'_>) -> Result<SnapshotMetadata, DecodeError> {
    let index = Index(reader.u64()?);
    let term = Term(reader.u64()?);
    let mut conf_state = ConfState::default();
    for set in [&mut conf_state.voters, &mut conf_state.learners] {
        let count = u32::from_le_bytes(reader.take(4)?.try_into().unwrap());
        for _ in 0..count {
            set.insert(NodeId(reader.u64()?));
        }
    }
    Ok(SnapshotMetadata {
        index,
        term,
        conf_state,
    })
}

fn bad(reason: &str) -> DecodeError {
    DecodeError::BadPayload(reason.to_string())
}

/// Reads little-endian fields off the front of a payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(bad("payload is shorter than its fields"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        let mut conf_state = ConfState::default();
        conf_state.voters.extend([NodeId(1), NodeId(2), NodeId(3)]);
        conf_state.learners.insert(NodeId(9));
        vec![
            Record::SegmentHeader {
                seq: 7,
                first_index: Index(42),
            },
            Record::Entry(Entry {
                term: Term(3),
                index: Index(42),
                kind: EntryKind::ConfChange,
                data: Bytes::from_static(b"hello"),
            }),
            Record::HardState(HardState {
                term: Term(5),
                vote: Some(NodeId(2)),
                commit: Index(9),
            }),
            Record::HardState(HardState {
                term: Term(5),
                vote: None,
                commit: Index(9),
            }),
            Record::Snapshot(SnapshotMetadata {
                index: Index(40),
                term: Term(3),
                conf_state,
            }),
        ]
    }

    #[test]
    fn every_record_type_round_trips() {
        let mut buf = Vec::new();
        for record in samples() {
            encode(&record, &mut buf);
        }
        let mut offset = 0;
        for record in samples() {
            let (decoded, next) = decode(&buf, offset).unwrap();
            assert_eq!(decoded, record);
            offset = next;
        }
        assert_eq!(offset, buf.len());
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        for record in samples() {
            let mut buf = Vec::new();
            encode(&record, &mut buf);
            for bit in 0..buf.len() * 8 {
                let mut flipped = buf.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    decode(&flipped, 0).is_err(),
                    "flip of bit {bit} in {record:?} missed"
                );
            }
        }
    }

    #[test]
    fn zero_filled_bytes_are_not_a_record() {
        let zeros = [0u8; 64];
        assert!(matches!(decode(&zeros, 0), Err(DecodeError::BadFrame(_))));
        assert_eq!(decode(&zeros[..5], 0), Err(DecodeError::Truncated));
    }
}
