//! Applying the lease entries of the log (LeaseGrant, LeaseRevoke, LeaseCheckpoint) inside
//! the driver's one MVCC batch, and keeping the lessor's attachments in step with what the
//! batch committed.
//!
//! A revoke deletes every key attached to the lease in ONE revision (one txn of deletes:
//! one DELETE event per key), including keys attached earlier in the same batch (the
//! batch's puts with a lease are noted in [`PendingAttachments`]). Every candidate key is
//! re-read in the batch so a key moved to another lease or deleted stays untouched.
//!
//! Called only by `apply.rs` on the driver thread. The lessor mutex is locked only for
//! short moments, never across a store call that could consult it (the batch's lease
//! check locks it itself).

use std::sync::Mutex;
use std::time::Instant;

use super::shared::Applied;
use super::{Metrics, ServerError};
use crate::lease::{record, LeaseError, Lessor};
use crate::mvcc::{self, ApplyBatch, Backend};
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::internal_request::Request;

/// Keys a put with a lease may have attached earlier in the current batch, not yet in
/// the lessor (attachments follow commit events).
#[derive(Default)]
pub struct PendingAttachments(Vec<(i64, Vec<u8>)>);

impl PendingAttachments {
    /// Notes every put with a lease inside `req` (txn branches included: the revoke
    /// re-reads each key, so a branch not taken costs a lookup only).
    pub fn note(&mut self, req: &Request) {
        match req {
            Request::Put(p) if p.lease != 0 => self.0.push((p.lease, p.key.to_vec())),
            Request::Txn(t) => self.note_txn(t),
            _ => {}
        }
    }

    fn note_txn(&mut self, t: &pb::TxnRequest) {
        use crate::proto::etcdserverpb::request_op::Request as Op;
        for op in t.success.iter().chain(&t.failure) {
            match &op.request {
                Some(Op::RequestPut(p)) if p.lease != 0 => {
                    self.0.push((p.lease, p.key.to_vec()));
                }
                Some(Op::RequestTxn(n)) => self.note_txn(n),
                _ => {}
            }
        }
    }
}

fn lock(lessor: &Mutex<Lessor>) -> std::sync::MutexGuard<'_, Lessor> {
    lessor.lock().expect("lessor lock poisoned")
}

/// Applies one lease request; `None` if `req` is not a lease request.
pub fn apply_lease<B: Backend>(
    batch: &mut ApplyBatch<'_, '_, B>,
    lessor: &Mutex<Lessor>,
    pending: &PendingAttachments,
    metrics: &Metrics,
    req: &Request,
) -> Option<Result<Applied, ServerError>> {
    let now = Instant::now();
    Some(match req {
        Request::LeaseGrant(g) => {
            let granted = lock(lessor).grant(g.id, g.ttl, now);
            match granted {
                Ok(ttl) => {
                    batch.put_app_meta(&record::name(g.id), record::encode(ttl, 0));
                    metrics.lease_granted.inc();
                    metrics.lease_ttl.observe(ttl as f64);
                    Ok(Applied::LeaseGrant { id: g.id, ttl })
                }
                Err(e) => Err(lease_error(e)),
            }
        }
        Request::LeaseRevoke(r) => revoke(batch, lessor, pending, metrics, r.id),
        Request::LeaseCheckpoint(c) => {
            let mut l = lock(lessor);
            for cp in &c.checkpoints {
                if let Some(lease) = l.get(cp.id) {
                    let ttl = lease.ttl_secs;
                    batch.put_app_meta(&record::name(cp.id), record::encode(ttl, cp.remaining_ttl));
                    l.checkpoint(cp.id, cp.remaining_ttl);
                }
            }
            Ok(Applied::LeaseCheckpoint)
        }
        _ => return None,
    })
}

fn revoke<B: Backend>(
    batch: &mut ApplyBatch<'_, '_, B>,
    lessor: &Mutex<Lessor>,
    pending: &PendingAttachments,
    metrics: &Metrics,
    id: i64,
) -> Result<Applied, ServerError> {
    let mut keys = match lock(lessor).get(id) {
        Some(l) => l.keys.clone(),
        None => return Err(lease_error(LeaseError::NotFound)),
    };
    keys.extend(
        pending
            .0
            .iter()
            .filter(|(l, _)| *l == id)
            .map(|(_, k)| k.clone()),
    );
    let mut deletes = Vec::new();
    for key in keys {
        let found = batch.range(&mvcc::RangeRequest {
            key: key.clone(),
            ..Default::default()
        })?;
        if found.kvs.first().is_some_and(|kv| kv.lease == id) {
            deletes.push(mvcc::RequestOp::DeleteRange(mvcc::DeleteRangeRequest {
                key,
                ..Default::default()
            }));
        }
    }
    if !deletes.is_empty() {
        batch.txn(&mvcc::TxnRequest {
            compare: Vec::new(),
            success: deletes,
            failure: Vec::new(),
        })?;
    }
    let _ = lock(lessor).revoke(id);
    batch.delete_app_meta(&record::name(id));
    metrics.lease_revoked.inc();
    Ok(Applied::LeaseRevoke(batch.current_revision()))
}

/// The server error for a lessor refusal.
pub fn lease_error(e: LeaseError) -> ServerError {
    match e {
        LeaseError::Exists => ServerError::LeaseExists,
        LeaseError::NotFound => ServerError::LeaseNotFound,
    }
}

/// Rebuilds `lessor` from the store's lease records and leased keys (start, and after an
/// installed snapshot image).
pub fn rebuild<B: Backend>(lessor: &mut Lessor, store: &mvcc::Store<B>) -> Result<(), ServerError> {
    let now = Instant::now();
    lessor.clear();
    for (name, value) in store.app_meta_scan(record::PREFIX)? {
        match record::decode(&name, &value) {
            Some((id, ttl, remaining)) => lessor.restore(id, ttl, remaining, now),
            None => tracing::warn!(?name, "skipping an undecodable lease record"),
        }
    }
    for (key, lease) in store.leased_keys()? {
        lessor.attach(lease, &key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{EventType, MemBackend, Store};

    fn grant(id: i64, ttl: i64) -> Request {
        Request::LeaseGrant(pb::LeaseGrantRequest { ttl, id })
    }

    fn put(key: &str, lease: i64) -> Request {
        Request::Put(pb::PutRequest {
            key: key.as_bytes().to_vec().into(),
            value: b"v".to_vec().into(),
            lease,
            ..Default::default()
        })
    }

    /// Grant, attach and revoke inside ONE batch (one Ready): the revoke must find the
    /// keys attached earlier in the batch (not yet in the lessor) and delete them all in
    /// one revision; the commit events then leave the lessor without the lease.
    #[test]
    fn revoke_in_the_same_batch_deletes_keys_attached_in_that_batch() {
        let mut store = Store::open(MemBackend::new()).unwrap();
        let lessor = Mutex::new(Lessor::new(1));
        let metrics = Metrics::new();
        let exists = |id: i64| lessor.lock().unwrap().contains(id);
        let mut batch = store.begin_apply_with_leases(Some(&exists)).unwrap();
        let mut pending = PendingAttachments::default();
        let r = apply_lease(&mut batch, &lessor, &pending, &metrics, &grant(7, 10));
        assert!(matches!(
            r,
            Some(Ok(Applied::LeaseGrant { id: 7, ttl: 10 }))
        ));
        for key in ["a", "b", "c"] {
            let req = put(key, 7);
            pending.note(&req);
            let Request::Put(p) = &req else {
                unreachable!()
            };
            batch.put(&super::super::convert::put_request(p)).unwrap();
        }
        batch
            .put(&super::super::convert::put_request(&pb::PutRequest {
                key: b"c".to_vec().into(),
                value: b"moved".to_vec().into(),
                ..Default::default()
            }))
            .unwrap();
        let before = batch.current_revision();
        let r = apply_lease(&mut batch, &lessor, &pending, &metrics, &put("x", 0));
        assert!(r.is_none(), "a put is not a lease request");
        let r = apply_lease(&mut batch, &lessor, &pending, &metrics, &revoke_req(7));
        assert!(matches!(r, Some(Ok(Applied::LeaseRevoke(rev))) if rev == before + 1));
        let out = batch.commit(1).unwrap();
        lessor.lock().unwrap().apply_events(&out.events);
        let deletes: Vec<_> = out
            .events
            .iter()
            .filter(|e| e.kind == EventType::Delete)
            .map(|e| (e.kv.key.clone(), e.kv.mod_revision))
            .collect();
        assert_eq!(
            deletes,
            vec![(b"a".to_vec(), before + 1), (b"b".to_vec(), before + 1)],
            "a and b deleted in one revision; c moved off the lease stays"
        );
        assert!(!lessor.lock().unwrap().contains(7));
        assert!(store.app_meta(&record::name(7)).unwrap().is_none());
        let err = {
            let mut batch = store.begin_apply().unwrap();
            let r = apply_lease(&mut batch, &lessor, &pending, &metrics, &revoke_req(7));
            batch.commit(2).unwrap();
            r
        };
        assert!(matches!(err, Some(Err(ServerError::LeaseNotFound))));
    }

    fn revoke_req(id: i64) -> Request {
        Request::LeaseRevoke(pb::LeaseRevokeRequest { id })
    }

    #[test]
    fn leases_and_attachments_are_rebuilt_from_the_store() {
        let mut store = Store::open(MemBackend::new()).unwrap();
        let lessor = Mutex::new(Lessor::new(1));
        let metrics = Metrics::new();
        {
            let exists = |id: i64| lessor.lock().unwrap().contains(id);
            let mut batch = store.begin_apply_with_leases(Some(&exists)).unwrap();
            let pending = PendingAttachments::default();
            apply_lease(&mut batch, &lessor, &pending, &metrics, &grant(5, 30));
            let Request::Put(p) = put("k", 5) else {
                unreachable!()
            };
            batch.put(&super::super::convert::put_request(&p)).unwrap();
            batch.commit(1).unwrap();
        }
        let mut rebuilt = Lessor::new(1);
        rebuild(&mut rebuilt, &store).unwrap();
        let ttl = rebuilt.time_to_live(5, Instant::now()).unwrap();
        assert_eq!((ttl.granted_secs, ttl.keys), (30, vec![b"k".to_vec()]));
        rebuilt.check_invariants();
    }
}
