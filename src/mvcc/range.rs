//! Reads: a range of keys at a revision with every `RangeRequest` option, over a read view
//! that may include the uncommitted writes of the current apply batch.
//!
//! etcd's semantics, kept exactly: `count` is the number of keys in the range at the read
//! revision, before the min/max revision filters and before `limit`; the filters run on the
//! fetched kvs, then the sort, then `limit` cuts and sets `more`. With no sort (or KEY
//! ascending) results are key-ascending; a sort on another target with order NONE means
//! ASCEND (applied, as in etcd, to the first `limit + 1` keys only when a limit is set).
//! `count_only` returns no kvs and `more = false`. Ties in a sort keep key order.
//! Called by [`super::store::Store::range`] and by the write transaction for reads inside
//! a Txn; it never writes.

use std::collections::HashMap;

use super::backend::{Backend, Bucket};
use super::error::{MvccError, Result};
use super::index::{Index, KeyRange};
use super::key_index::Visible;
use super::kv::{decode_key_value, KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget};
use super::revision::Revision;

/// What a read sees: the index, the backend, the batch's uncommitted values, and the
/// revisions bounding valid reads.
pub(crate) struct View<'a, B: Backend> {
    /// The in-memory index (already holding the batch's writes).
    pub index: &'a Index,
    /// The persisted values.
    pub backend: &'a B,
    /// Values written by the open batch, not yet in the backend.
    pub pending: &'a HashMap<Revision, KeyValue>,
    /// The newest readable revision.
    pub current: i64,
    /// The compacted revision: reads below it fail.
    pub compacted: i64,
}

impl<B: Backend> View<'_, B> {
    /// The stored kv of a visible revision.
    pub fn fetch(&self, key: &[u8], v: &Visible) -> Result<KeyValue> {
        if let Some(kv) = self.pending.get(&v.modified) {
            return Ok(kv.clone());
        }
        let raw = self
            .backend
            .get(Bucket::Key, &v.modified.to_bytes())?
            .ok_or_else(|| {
                MvccError::Corrupt(format!(
                    "revision {:?} of key {key:?} is missing",
                    v.modified
                ))
            })?;
        let kv = decode_key_value(&raw)?;
        if kv.key != key {
            return Err(MvccError::Corrupt(format!(
                "revision {:?} holds another key",
                v.modified
            )));
        }
        Ok(kv)
    }

    /// The newest version of `key`, if it exists.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.index.get(key, self.current) {
            Some(v) => self.fetch(key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every existing key in `range` at the current revision, key-ascending.
    pub fn get_range(&self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        let (found, _) = self.index.range(range, self.current, 0);
        found.iter().map(|(k, v)| self.fetch(k, v)).collect()
    }

    /// The revision a request for `revision` reads at, or why it cannot.
    pub fn read_revision(&self, revision: i64) -> Result<i64> {
        if revision > self.current {
            return Err(MvccError::FutureRevision);
        }
        let at = if revision <= 0 {
            self.current
        } else {
            revision
        };
        if at < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(at)
    }

    /// Execute a Range request. `revision` of the response is the view's current revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        if req.key.is_empty() {
            return Err(MvccError::KeyNotProvided);
        }
        let at = self.read_revision(req.revision)?;
        let range = KeyRange::new(&req.key, &req.range_end);
        let order = effective_order(req);
        let filtered = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        // One more than the limit tells whether more exist; an explicit sort or a filter
        // needs all. etcd tests the requested order, not the effective one: a non-KEY target
        // with order NONE sorts only the first limit+1 keys, and so do we.
        let fetch_limit = match req.limit {
            l if l > 0 && req.sort_order == SortOrder::None && !filtered => l as usize + 1,
            _ => 0,
        };
        let fetch_limit = if req.count_only { 1 } else { fetch_limit };
        let (found, count) = self.index.range(&range, at, fetch_limit);
        let mut resp = RangeResponse {
            revision: self.current,
            count: count as i64,
            ..Default::default()
        };
        if req.count_only {
            return Ok(resp);
        }
        let mut kvs = Vec::with_capacity(found.len());
        for (key, v) in &found {
            let kv = self.fetch(key, v)?;
            if passes_filters(req, &kv) {
                kvs.push(kv);
            }
        }
        sort_kvs(&mut kvs, order, req.sort_target);
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            resp.more = true;
        }
        if req.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        resp.kvs = kvs;
        Ok(resp)
    }
}

/// etcd's rule: a non-KEY target with order NONE sorts ascending; KEY ascending is the
/// natural order and needs no sort.
fn effective_order(req: &RangeRequest) -> SortOrder {
    match (req.sort_target, req.sort_order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (SortTarget::Key, order) => order,
        (_, SortOrder::None) => SortOrder::Ascend,
        (_, order) => order,
    }
}

fn passes_filters(req: &RangeRequest, kv: &KeyValue) -> bool {
    (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
        && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
        && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
}

/// Stable sort of key-ascending `kvs` by `target`, so ties stay key-ascending.
fn sort_kvs(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(cmp),
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
    }
}
