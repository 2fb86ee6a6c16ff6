//! Writes: an [`ApplyBatch`] executes the requests of one or more committed Raft entries,
//! each write request under its own main revision (sub-revisions rising inside it), and
//! commits them, with the applied Raft index and the server's records, as ONE atomic
//! backend write.
//!
//! Every request is checked before it writes anything (etcd's order: choose the Txn
//! branches, check the chosen requests, then execute), so a refused request leaves no
//! trace. Reads inside the batch see its earlier writes: the index is updated at once and
//! the new values wait in `pending` until commit. Events come back from
//! [`ApplyBatch::commit`] for the watchers. Called by the server's apply loop only.

use std::collections::HashMap;

use super::backend::{Backend, Bucket, WriteBatch};
use super::compare::txn_path;
use super::error::{MvccError, Result};
use super::index::KeyRange;
use super::kv::*;
use super::range::View;
use super::revision::Revision;
use super::store::{Store, META_APP_PREFIX, META_CONSISTENT_INDEX, META_CURRENT_REV};

/// Looks up whether a lease exists (the lessor's answer); puts naming an unknown lease
/// fail with `LeaseNotFound`.
pub type LeaseCheck<'l> = &'l dyn Fn(i64) -> bool;

/// What a committed batch produced.
#[derive(Debug, Default)]
pub struct CommitOutcome {
    /// The events of every write in the batch, in revision order.
    pub events: Vec<Event>,
    /// The store's current revision after the batch.
    pub current_revision: i64,
    /// The applied index now stored in the backend.
    pub applied_index: u64,
}

/// An open write batch over a [`Store`]. Obtain it from [`Store::begin_apply`], run the
/// requests of the committed entries in log order, then [`ApplyBatch::commit`] with the
/// index of the last entry. Dropping an uncommitted batch that changed anything poisons
/// the store (its memory would be ahead of its disk): always commit, even if every request
/// failed.
pub struct ApplyBatch<'s, 'l, B: Backend> {
    pub(crate) store: &'s mut Store<B>,
    pub(crate) pending: HashMap<Revision, KeyValue>,
    pub(crate) batch: WriteBatch,
    events: Vec<Event>,
    lease_exists: Option<LeaseCheck<'l>>,
    committed: bool,
}

/// The revision a write request writes at, and its next sub-revision.
struct Writer {
    main: i64,
    sub: i64,
}

impl<B: Backend> Store<B> {
    /// Open a write batch; puts are not checked against any lessor.
    pub fn begin_apply(&mut self) -> Result<ApplyBatch<'_, 'static, B>> {
        self.begin_apply_with_leases(None)
    }

    /// Open a write batch whose puts must name leases `lease_exists` accepts (0 = none is
    /// always fine).
    pub fn begin_apply_with_leases<'l>(
        &mut self,
        lease_exists: Option<LeaseCheck<'l>>,
    ) -> Result<ApplyBatch<'_, 'l, B>> {
        self.check_usable()?;
        Ok(ApplyBatch {
            store: self,
            pending: HashMap::new(),
            batch: WriteBatch::default(),
            events: Vec::new(),
            lease_exists,
            committed: false,
        })
    }
}

impl<B: Backend> ApplyBatch<'_, '_, B> {
    /// A read view; with `writer` (the open request) it sees that request's writes too.
    fn view(&self, writer: Option<&Writer>) -> View<'_, B> {
        let current = match writer {
            Some(w) if w.sub > 0 => w.main,
            _ => self.store.current_revision,
        };
        self.store.view(&self.pending, current)
    }

    fn writer(&self) -> Writer {
        Writer {
            main: self.store.current_revision + 1,
            sub: 0,
        }
    }

    /// Close a request: if it wrote, its main revision becomes the current revision.
    fn finish(&mut self, w: Writer) -> i64 {
        if w.sub > 0 {
            self.store.current_revision = w.main;
        }
        self.store.current_revision
    }

    /// Range inside the batch: sees every earlier write of the batch.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.view(None).range(req)
    }

    /// Put, advancing the revision by one. Errors (nothing written): `KeyNotProvided`,
    /// `KeyNotFound` (ignore_value/ignore_lease on a missing key), `ValueProvided`,
    /// `LeaseProvided`, `LeaseNotFound`.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        super::validate::validate_put(req)?;
        self.check_put(req)?;
        let mut w = self.writer();
        let done = self.do_put(req, &mut w);
        let mut resp = self.executed(done)?;
        resp.revision = self.finish(w);
        Ok(resp)
    }

    /// DeleteRange; advances the revision by one only if some key was deleted.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        super::validate::validate_delete_range(req)?;
        let mut w = self.writer();
        let done = self.do_delete_range(req, &mut w);
        let mut resp = self.executed(done)?;
        resp.revision = self.finish(w);
        Ok(resp)
    }

    /// Txn: choose the branches (compares see the state before the txn), check the chosen
    /// requests, then run them under one revision. Reads inside see earlier writes of the
    /// txn. Advances the revision by one if anything was written. Errors (nothing written):
    /// those of [`super::validate::validate_txn`] except the op count (the server checks
    /// that with its configured limit before proposing), and those of the chosen requests.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        super::validate::validate_txn(req, usize::MAX)?;
        let path = txn_path(&self.view(None), req)?;
        self.check_txn(req, &mut path.iter())?;
        let mut w = self.writer();
        let done = self.do_txn(req, &mut path.iter(), &mut w);
        let mut resp = self.executed(done)?;
        let revision = self.finish(w);
        set_revisions(&mut resp, revision);
        Ok(resp)
    }

    /// Store a server record (lease, membership, ...) under `name`, in this batch.
    /// Readable with [`Store::app_meta`] after commit.
    pub fn put_app_meta(&mut self, name: &[u8], value: Vec<u8>) {
        self.batch
            .put(Bucket::Meta, [META_APP_PREFIX, name].concat(), value);
    }

    /// Remove a server record, in this batch.
    pub fn delete_app_meta(&mut self, name: &[u8]) {
        self.batch
            .delete(Bucket::Meta, [META_APP_PREFIX, name].concat());
    }

    /// The current revision as seen inside the batch.
    pub fn current_revision(&self) -> i64 {
        self.store.current_revision
    }

    /// Write everything, with `applied_index`, in one atomic backend write. On failure the
    /// store is poisoned (reopen it); a poisoned store writes nothing. Returns the events
    /// for the watchers.
    pub fn commit(mut self, applied_index: u64) -> Result<CommitOutcome> {
        self.committed = true;
        self.store.check_usable()?;
        assert!(
            applied_index >= self.store.applied_index,
            "applied index going back from {} to {applied_index}",
            self.store.applied_index
        );
        let mut batch = std::mem::take(&mut self.batch);
        batch.put(
            Bucket::Meta,
            META_CONSISTENT_INDEX.to_vec(),
            (applied_index as i64).to_be_bytes().to_vec(),
        );
        let current = self.store.current_revision;
        batch.put(
            Bucket::Meta,
            META_CURRENT_REV.to_vec(),
            current.to_be_bytes().to_vec(),
        );
        if let Err(e) = self.store.backend.write(batch) {
            self.store.poisoned = true;
            return Err(e);
        }
        self.store.applied_index = applied_index;
        let events = std::mem::take(&mut self.events);
        Ok(CommitOutcome {
            events,
            current_revision: current,
            applied_index,
        })
    }

    /// A request that passed its checks failed while executing: only the backend can cause
    /// that, and the request may be half done in memory, so the store is poisoned.
    fn executed<T>(&mut self, done: Result<T>) -> Result<T> {
        if done.is_err() {
            tracing::error!("write failed after its checks; poisoning the store");
            self.store.poisoned = true;
        }
        done
    }

    /// State checks of a put, against the state before its request.
    fn check_put(&self, req: &PutRequest) -> Result<()> {
        if (req.ignore_value || req.ignore_lease) && self.view(None).get(&req.key)?.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        match self.lease_exists {
            Some(exists) if req.lease != 0 && !exists(req.lease) => Err(MvccError::LeaseNotFound),
            _ => Ok(()),
        }
    }

    /// Check the requests on the chosen path: puts as [`Self::check_put`], ranges' revisions.
    fn check_txn<'p>(
        &self,
        req: &TxnRequest,
        path: &mut impl Iterator<Item = &'p bool>,
    ) -> Result<()> {
        let ops = if *path.next().expect("path covers the txn") {
            &req.success
        } else {
            &req.failure
        };
        for op in ops {
            match op {
                RequestOp::Put(p) => self.check_put(p)?,
                RequestOp::Range(r) => self.view(None).read_revision(r.revision).map(|_| ())?,
                RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(t) => self.check_txn(t, path)?,
            }
        }
        Ok(())
    }

    fn do_txn<'p>(
        &mut self,
        req: &TxnRequest,
        path: &mut impl Iterator<Item = &'p bool>,
        w: &mut Writer,
    ) -> Result<TxnResponse> {
        let succeeded = *path.next().expect("path covers the txn");
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.view(Some(w)).range(r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.do_put(p, w)?),
                RequestOp::DeleteRange(d) => {
                    let mut resp = self.do_delete_range(d, w)?;
                    // etcd reports the txn's revision once anything in it has written,
                    // and the revision before the txn otherwise (a delete of nothing first).
                    resp.revision = if w.sub > 0 {
                        w.main
                    } else {
                        self.store.current_revision
                    };
                    ResponseOp::DeleteRange(resp)
                }
                RequestOp::Txn(t) => ResponseOp::Txn(self.do_txn(t, path, w)?),
            });
        }
        Ok(TxnResponse {
            revision: 0,
            succeeded,
            responses,
        })
    }

    fn do_put(&mut self, req: &PutRequest, w: &mut Writer) -> Result<PutResponse> {
        let prev = self.view(Some(w)).get(&req.key)?;
        let rev = Revision::new(w.main, w.sub);
        w.sub += 1;
        let (create_revision, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev.main, 1),
        };
        let kept = |p: &KeyValue| (p.value.clone(), p.lease);
        let (old_value, old_lease) = prev.as_ref().map(kept).unwrap_or_default();
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: rev.main,
            version,
            value: if req.ignore_value {
                old_value
            } else {
                req.value.clone()
            },
            lease: if req.ignore_lease {
                old_lease
            } else {
                req.lease
            },
        };
        self.record(rev, false, &kv);
        self.store.index.put(&req.key, rev);
        self.pending.insert(rev, kv.clone());
        let prev_kv = if req.prev_kv { prev.clone() } else { None };
        self.events.push(Event {
            kind: EventType::Put,
            kv,
            prev_kv: prev,
        });
        Ok(PutResponse {
            revision: 0,
            prev_kv,
        })
    }

    fn do_delete_range(
        &mut self,
        req: &DeleteRangeRequest,
        w: &mut Writer,
    ) -> Result<DeleteRangeResponse> {
        let range = KeyRange::new(&req.key, &req.range_end);
        let doomed = self.view(Some(w)).get_range(&range)?;
        for prev in &doomed {
            let rev = Revision::new(w.main, w.sub);
            w.sub += 1;
            let tombstone = KeyValue {
                key: prev.key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            self.record(
                rev,
                true,
                &KeyValue {
                    key: prev.key.clone(),
                    ..Default::default()
                },
            );
            self.store.index.tombstone(&prev.key, rev);
            self.events.push(Event {
                kind: EventType::Delete,
                kv: tombstone,
                prev_kv: Some(prev.clone()),
            });
        }
        let deleted = doomed.len() as i64;
        let prev_kvs = if req.prev_kv { doomed } else { Vec::new() };
        Ok(DeleteRangeResponse {
            revision: 0,
            deleted,
            prev_kvs,
        })
    }

    /// Queue the key-bucket entry of one change.
    fn record(&mut self, rev: Revision, tombstone: bool, kv: &KeyValue) {
        let key = rev.to_key_bytes(tombstone);
        let value = encode_key_value(kv);
        self.store.key_bucket_bytes += (key.len() + value.len()) as u64;
        self.store.key_bucket_entries += 1;
        self.batch.put(Bucket::Key, key, value);
    }
}

impl<B: Backend> Drop for ApplyBatch<'_, '_, B> {
    fn drop(&mut self) {
        if !self.committed && (!self.batch.is_empty() || !self.pending.is_empty()) {
            tracing::error!("apply batch dropped without commit; poisoning the store");
            self.store.poisoned = true;
        }
    }
}

/// Give a txn response and its nested responses their header revisions, as etcd does: a
/// put reports the txn's revision; a range or delete reports what the txn had seen when it
/// ran (set in `do_txn`); a txn reports its final revision.
fn set_revisions(resp: &mut TxnResponse, revision: i64) {
    resp.revision = revision;
    for r in &mut resp.responses {
        match r {
            ResponseOp::Range(_) | ResponseOp::DeleteRange(_) => {}
            ResponseOp::Put(p) => p.revision = revision,
            ResponseOp::Txn(t) => set_revisions(t, revision),
        }
    }
}
