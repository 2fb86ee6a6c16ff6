//! Request checks that etcd does in its API layer before a request reaches Raft: the server
//! calls these on arrival, so a bad request is refused without being proposed.
//!
//! Pure functions over the request types; they read no state. (Checks that need state,
//! such as `key not found` for `ignore_value`, happen when the request is applied.)

use std::collections::HashSet;

use super::error::{MvccError, Result};
use super::index::KeyRange;
use super::kv::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS_DEFAULT: usize = 128;

/// Check a Range: the key must be given.
pub fn validate_range(req: &RangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(MvccError::KeyNotProvided);
    }
    Ok(())
}

/// Check a Put: key given; no value with `ignore_value`; no lease with `ignore_lease`.
pub fn validate_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(MvccError::KeyNotProvided);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// Check a DeleteRange: the key must be given.
pub fn validate_delete_range(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(MvccError::KeyNotProvided);
    }
    Ok(())
}

/// Check a Txn recursively: at most `max_txn_ops` compares, success ops and failure ops
/// (each counted separately), every inner request valid, and no branch writing a key twice
/// (a put key also covered by a delete, or by a put in a nested txn of the same branch).
pub fn validate_txn(req: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    let too_many = [req.compare.len(), req.success.len(), req.failure.len()];
    if too_many.iter().any(|&n| n > max_txn_ops) {
        return Err(MvccError::TooManyOps);
    }
    for c in &req.compare {
        if c.key.is_empty() {
            return Err(MvccError::KeyNotProvided);
        }
    }
    for branch in [&req.success, &req.failure] {
        for op in branch {
            match op {
                RequestOp::Range(r) => validate_range(r)?,
                RequestOp::Put(p) => validate_put(p)?,
                RequestOp::DeleteRange(d) => validate_delete_range(d)?,
                RequestOp::Txn(t) => validate_txn(t, max_txn_ops)?,
            }
        }
        branch_writes(branch)?;
    }
    Ok(())
}

/// The keys a branch puts and the ranges it deletes (nested txns included), or
/// `DuplicateKey` if a key is written twice: etcd's `checkIntervals`. The two branches of a
/// nested txn may put the same key (only one runs); a put may not fall in a delete of the
/// same level or of an earlier nested txn.
fn branch_writes(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<KeyRange>)> {
    let mut dels: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(KeyRange::new(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[KeyRange], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts = HashSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (puts_then, dels_then) = branch_writes(&t.success)?;
        let (puts_else, dels_else) = branch_writes(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
        }
        for k in &puts_else {
            let clash = puts.contains(k) && !puts_then.contains(k);
            if clash || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp::Put(PutRequest {
            key: k.into(),
            ..Default::default()
        })
    }

    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn duplicate_keys() {
        let ok = |t: TxnRequest| validate_txn(&t, 128).is_ok();
        assert!(ok(txn(vec![put("a"), put("b")], vec![put("a")])));
        assert!(!ok(txn(vec![put("a"), put("a")], vec![])));
        assert!(!ok(txn(vec![del("a", "c"), put("b")], vec![])));
        assert!(ok(txn(vec![del("a", "b"), put("b")], vec![])));
        let nested = RequestOp::Txn(txn(vec![put("x")], vec![put("x")]));
        assert!(
            ok(txn(vec![nested.clone()], vec![])),
            "then/else may put the same key"
        );
        assert!(!ok(txn(vec![nested, put("x")], vec![])));
    }

    #[test]
    fn limits_and_arguments() {
        let many = txn((0..129).map(|i| put(&format!("k{i}"))).collect(), vec![]);
        assert!(matches!(
            validate_txn(&many, 128),
            Err(MvccError::TooManyOps)
        ));
        assert!(validate_txn(&many, 200).is_ok());
        let p = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert!(matches!(validate_put(&p), Err(MvccError::ValueProvided)));
        let p = PutRequest {
            key: b"k".to_vec(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        };
        assert!(matches!(validate_put(&p), Err(MvccError::LeaseProvided)));
        assert!(matches!(
            validate_put(&PutRequest::default()),
            Err(MvccError::KeyNotProvided)
        ));
    }
}
