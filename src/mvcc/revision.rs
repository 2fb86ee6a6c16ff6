//! Revisions and their order-preserving byte encoding, the keys of the backend's key bucket.
//!
//! A [`Revision`] is `{main, sub}`: `main` is the store-wide revision of the write request
//! (one per Put, effective DeleteRange or writing Txn), `sub` numbers the changes inside that
//! request from 0. The encoding is etcd's: 8 bytes big-endian `main`, the byte `'_'`, 8 bytes
//! big-endian `sub` (17 bytes), plus a trailing `'t'` when the entry is a tombstone (a delete
//! marker). Because both numbers are non-negative and big-endian, byte order equals revision
//! order, so a scan of the key bucket visits history in the order it happened.
//!
//! This file knows nothing of keys or values; the store and compaction call it.

use super::error::{MvccError, Result};

/// Length of an encoded revision without the tombstone marker.
pub const REVISION_BYTES_LEN: usize = 17;
/// Length of an encoded revision with the tombstone marker.
pub const TOMBSTONE_BYTES_LEN: usize = 18;
const SEPARATOR: u8 = b'_';
const TOMBSTONE_MARKER: u8 = b't';

/// One point in the store's history: the `main` revision of a write request and the `sub`
/// index of one change inside it. Ordered by `main`, then `sub`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The store-wide revision of the write request; >= 1 for stored data.
    pub main: i64,
    /// The index of the change inside its request, from 0.
    pub sub: i64,
}

impl Revision {
    /// The revision `{main, sub}`.
    pub fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }

    /// The 17-byte order-preserving encoding (no tombstone marker).
    ///
    /// Panics on a negative component: the store never creates one.
    pub fn to_bytes(self) -> [u8; REVISION_BYTES_LEN] {
        assert!(
            self.main >= 0 && self.sub >= 0,
            "negative revision {self:?}"
        );
        let mut out = [0u8; REVISION_BYTES_LEN];
        out[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        out[8] = SEPARATOR;
        out[9..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        out
    }

    /// The key-bucket key of this revision: 17 bytes, or 18 with the tombstone marker.
    pub fn to_key_bytes(self, tombstone: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOMBSTONE_BYTES_LEN);
        out.extend_from_slice(&self.to_bytes());
        if tombstone {
            out.push(TOMBSTONE_MARKER);
        }
        out
    }
}

/// A decoded key-bucket key: the revision and whether it marks a deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketKey {
    /// The revision of the change.
    pub revision: Revision,
    /// True when the change deleted the key.
    pub tombstone: bool,
}

/// Decode a key-bucket key, checking its length, separator and marker (the gateway check
/// for bytes read from disk).
pub fn decode_key_bytes(bytes: &[u8]) -> Result<BucketKey> {
    let tombstone = match bytes.len() {
        REVISION_BYTES_LEN => false,
        TOMBSTONE_BYTES_LEN if bytes[17] == TOMBSTONE_MARKER => true,
        _ => return Err(MvccError::Corrupt(format!("bad revision key {bytes:?}"))),
    };
    if bytes[8] != SEPARATOR {
        return Err(MvccError::Corrupt(format!(
            "bad revision separator {bytes:?}"
        )));
    }
    let main = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let sub = u64::from_be_bytes(bytes[9..17].try_into().expect("8 bytes"));
    if main > i64::MAX as u64 || sub > i64::MAX as u64 {
        return Err(MvccError::Corrupt(format!(
            "revision out of range {bytes:?}"
        )));
    }
    let revision = Revision::new(main as i64, sub as i64);
    Ok(BucketKey {
        revision,
        tombstone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoding_is_etcds_layout() {
        let b = Revision::new(0x0102, 3).to_key_bytes(true);
        assert_eq!(
            b,
            [0, 0, 0, 0, 0, 0, 1, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 3, b't']
        );
        let k = decode_key_bytes(&b).unwrap();
        assert_eq!(
            k,
            BucketKey {
                revision: Revision::new(0x0102, 3),
                tombstone: true
            }
        );
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode_key_bytes(b"short").is_err());
        let mut b = Revision::new(1, 1).to_key_bytes(false);
        b[8] = b'x';
        assert!(decode_key_bytes(&b).is_err());
        let mut b = Revision::new(1, 1).to_key_bytes(false);
        b.push(b'x');
        assert!(decode_key_bytes(&b).is_err());
    }

    proptest! {
        #[test]
        fn byte_order_is_revision_order(a in 0i64..i64::MAX, b in 0i64..1000, c in 0i64..i64::MAX,
                                         d in 0i64..1000, ta: bool, tc: bool) {
            let (x, y) = (Revision::new(a, b), Revision::new(c, d));
            let (bx, by) = (x.to_key_bytes(ta), y.to_key_bytes(tc));
            if x != y {
                prop_assert_eq!(x.cmp(&y), bx.cmp(&by));
            }
            prop_assert_eq!(decode_key_bytes(&bx).unwrap().revision, x);
        }

        #[test]
        fn nearby_revisions_order(a in 0i64..300, b in 0i64..300, c in 0i64..300, d in 0i64..300) {
            let (x, y) = (Revision::new(a, b), Revision::new(c, d));
            prop_assert_eq!(x.cmp(&y), x.to_bytes().cmp(&y.to_bytes()));
        }
    }
}
