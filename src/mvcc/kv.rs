//! The request, response and data types of the KV API, mirroring etcd's `etcdserverpb` and
//! `mvccpb` messages field for field so the server can map protobufs onto them 1:1, plus the
//! backend encoding of a [`KeyValue`].
//!
//! This file holds data only: no store logic. Field names are etcd's; revisions are `i64`
//! as in the protobufs.

use super::error::{MvccError, Result};

/// One version of one key, as clients see it (`mvccpb.KeyValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key; never empty for stored data.
    pub key: Vec<u8>,
    /// The main revision that created the key in its current generation.
    pub create_revision: i64,
    /// The main revision of the last change to the key.
    pub mod_revision: i64,
    /// Number of changes since the key was (re)created: 1 after creation, 0 for a tombstone.
    pub version: i64,
    /// The value; empty in `keys_only` ranges.
    pub value: Vec<u8>,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// The kind of change an [`Event`] reports (`mvccpb.Event.EventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// A key was created or modified.
    Put,
    /// A key was deleted.
    Delete,
}

/// One change produced by a write, handed to watchers after commit (`mvccpb.Event`).
///
/// For a DELETE, `kv` holds only the key and `mod_revision` = the deleting revision, as in
/// etcd. `prev_kv` is the version before the change (None if the key did not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// PUT or DELETE.
    pub kind: EventType,
    /// The key after the change.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}

/// Range result order (`RangeRequest.SortOrder`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// No sort requested: results come key-ascending (etcd's natural order).
    #[default]
    None,
    /// Lowest target first.
    Ascend,
    /// Highest target first.
    Descend,
}

/// The field a range is sorted by (`RangeRequest.SortTarget`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortTarget {
    /// The key bytes.
    #[default]
    Key,
    /// The key's version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value bytes.
    Value,
}

impl SortOrder {
    /// Map the protobuf enum number; unknown numbers are `invalid sort option`.
    pub fn from_i32(n: i32) -> Result<SortOrder> {
        match n {
            0 => Ok(SortOrder::None),
            1 => Ok(SortOrder::Ascend),
            2 => Ok(SortOrder::Descend),
            _ => Err(MvccError::InvalidSortOption),
        }
    }
}

impl SortTarget {
    /// Map the protobuf enum number; unknown numbers are `invalid sort option`.
    pub fn from_i32(n: i32) -> Result<SortTarget> {
        match n {
            0 => Ok(SortTarget::Key),
            1 => Ok(SortTarget::Version),
            2 => Ok(SortTarget::Create),
            3 => Ok(SortTarget::Mod),
            4 => Ok(SortTarget::Value),
            _ => Err(MvccError::InvalidSortOption),
        }
    }
}

/// `etcdserverpb.RangeRequest`. Range ends: empty `range_end` = the single `key`; `"\0"` =
/// every key >= `key`; otherwise the half-open `[key, range_end)`. Key `"\0"` with
/// range_end `"\0"` is therefore every key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range, see the type doc.
    pub range_end: Vec<u8>,
    /// At most this many kvs are returned; 0 = no limit. `more` tells if some were cut.
    pub limit: i64,
    /// Read at this revision; <= 0 means the current revision.
    pub revision: i64,
    /// Result order.
    pub sort_order: SortOrder,
    /// Field the order applies to.
    pub sort_target: SortTarget,
    /// Local read without consensus; the store ignores it (it is the server's concern).
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Keep only kvs with mod_revision >= this (0 = no bound).
    pub min_mod_revision: i64,
    /// Keep only kvs with mod_revision <= this (0 = no bound).
    pub max_mod_revision: i64,
    /// Keep only kvs with create_revision >= this (0 = no bound).
    pub min_create_revision: i64,
    /// Keep only kvs with create_revision <= this (0 = no bound).
    pub max_create_revision: i64,
}

/// `etcdserverpb.RangeResponse` without the header; `revision` is the header revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The header revision to report: the store's current revision at the read.
    pub revision: i64,
    /// The matching kvs, after filters, sort and limit.
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result.
    pub more: bool,
    /// Number of keys in the range at the read revision, before limit and before the
    /// min/max revision filters (etcd's rule).
    pub count: i64,
}

/// `etcdserverpb.PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutRequest {
    /// The key; must not be empty.
    pub key: Vec<u8>,
    /// The new value (must be empty with `ignore_value`).
    pub value: Vec<u8>,
    /// The lease to attach, 0 for none (must be 0 with `ignore_lease`).
    pub lease: i64,
    /// Return the previous kv.
    pub prev_kv: bool,
    /// Keep the current value; the key must exist.
    pub ignore_value: bool,
    /// Keep the current lease; the key must exist.
    pub ignore_lease: bool,
}

/// `etcdserverpb.PutResponse` without the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The header revision to report: the revision of this write.
    pub revision: i64,
    /// The kv before the put, when asked for and it existed.
    pub prev_kv: Option<KeyValue>,
}

/// `etcdserverpb.DeleteRangeRequest`; the range ends follow [`RangeRequest`]'s rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range.
    pub range_end: Vec<u8>,
    /// Return the deleted kvs.
    pub prev_kv: bool,
}

/// `etcdserverpb.DeleteRangeResponse` without the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    /// The header revision to report: this write's revision, or the current one if nothing
    /// was deleted.
    pub revision: i64,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted kvs, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a [`Compare`] relates the key's field to the given value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareResult {
    /// field == value
    Equal,
    /// field > value
    Greater,
    /// field < value
    Less,
    /// field != value
    NotEqual,
}

/// The field a [`Compare`] reads and the value it compares it with (the protobuf's
/// `target` enum together with its `target_union`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's version (0 if missing).
    Version(i64),
    /// The key's create revision (0 if missing).
    Create(i64),
    /// The key's mod revision (0 if missing).
    Mod(i64),
    /// The key's value (a missing key makes the compare false).
    Value(Vec<u8>),
    /// The key's lease (0 if missing or none).
    Lease(i64),
}

/// `etcdserverpb.Compare`: one guard of a [`TxnRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The relation to test.
    pub result: CompareResult,
    /// The field and the value.
    pub target: CompareTarget,
    /// The key compared.
    pub key: Vec<u8>,
    /// If not empty, every existing key in `[key, range_end)` must satisfy the compare
    /// (`"\0"` = every key >= `key`).
    pub range_end: Vec<u8>,
}

/// `etcdserverpb.RequestOp`: one operation of a Txn branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    /// A read; sees the txn's earlier writes.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// `etcdserverpb.ResponseOp`: the result of one [`RequestOp`], in the same order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    /// Result of a Range.
    Range(RangeResponse),
    /// Result of a Put.
    Put(PutResponse),
    /// Result of a DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// Result of a nested Txn.
    Txn(TxnResponse),
}

/// `etcdserverpb.TxnRequest`: if every compare holds, run `success`, else `failure`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnRequest {
    /// The guards, ANDed. Evaluated (nested ones too) against the state before the txn.
    pub compare: Vec<Compare>,
    /// Operations run when all compares hold.
    pub success: Vec<RequestOp>,
    /// Operations run otherwise.
    pub failure: Vec<RequestOp>,
}

/// `etcdserverpb.TxnResponse` without the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// The header revision to report: the txn's revision if it wrote, else the current one.
    pub revision: i64,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// Backend encoding of a [`KeyValue`]: `key_len: u32 BE`, key, then `create_revision`,
/// `mod_revision`, `version`, `lease` as `i64 BE`, then the value to the end.
pub fn encode_key_value(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + kv.key.len() + 32 + kv.value.len());
    out.extend_from_slice(&(kv.key.len() as u32).to_be_bytes());
    out.extend_from_slice(&kv.key);
    for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&kv.value);
    out
}

/// Decode [`encode_key_value`]'s bytes, refusing truncated input.
pub fn decode_key_value(bytes: &[u8]) -> Result<KeyValue> {
    let corrupt = || MvccError::Corrupt(format!("bad key value record of {} bytes", bytes.len()));
    let key_len = u32::from_be_bytes(bytes.get(..4).ok_or_else(corrupt)?.try_into().unwrap());
    let key_end = 4usize.checked_add(key_len as usize).ok_or_else(corrupt)?;
    let key = bytes.get(4..key_end).ok_or_else(corrupt)?.to_vec();
    let mut nums = [0i64; 4];
    for (i, n) in nums.iter_mut().enumerate() {
        let at = key_end + 8 * i;
        let raw = bytes.get(at..at + 8).ok_or_else(corrupt)?;
        *n = i64::from_be_bytes(raw.try_into().unwrap());
    }
    let value = bytes[key_end + 32..].to_vec();
    let [create_revision, mod_revision, version, lease] = nums;
    Ok(KeyValue {
        key,
        create_revision,
        mod_revision,
        version,
        value,
        lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_round_trips_and_refuses_truncation() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version: 3,
            value: b"bar".to_vec(),
            lease: 7,
        };
        let b = encode_key_value(&kv);
        assert_eq!(decode_key_value(&b).unwrap(), kv);
        for cut in 0..(4 + 3 + 32) {
            assert!(decode_key_value(&b[..cut]).is_err(), "cut at {cut}");
        }
    }
}
