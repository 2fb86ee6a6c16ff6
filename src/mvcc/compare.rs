//! Txn guards: evaluating a [`Compare`], and choosing the branch of a Txn and of every
//! nested Txn before anything is written (etcd evaluates all compares, nested ones
//! included, against the state before the transaction).
//!
//! Pure reads over a [`View`]; called by the write transaction in `txn.rs`.

use std::cmp::Ordering;

use super::backend::Backend;
use super::error::Result;
use super::index::KeyRange;
use super::kv::{Compare, CompareResult, CompareTarget, KeyValue, RequestOp, TxnRequest};
use super::range::View;

/// True if `kv` satisfies `c` (a missing key is the all-zero kv).
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

/// Evaluate one compare at the view's current revision. With a `range_end`, every existing
/// key in the range must satisfy it; no existing key compares as the zero kv, except that
/// a VALUE compare on missing keys is always false (etcd's rule: no way to tell a missing
/// value from an empty one).
pub(crate) fn evaluate<B: Backend>(view: &View<'_, B>, c: &Compare) -> Result<bool> {
    let kvs = view.get_range(&KeyRange::new(&c.key, &c.range_end))?;
    if kvs.is_empty() {
        let is_value = matches!(c.target, CompareTarget::Value(_));
        return Ok(!is_value && compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

/// The branch taken by `txn` and, depth-first in op order, by every nested Txn inside the
/// taken branches: `true` = success. Evaluated against `view` before any write.
pub(crate) fn txn_path<B: Backend>(view: &View<'_, B>, txn: &TxnRequest) -> Result<Vec<bool>> {
    let mut path = Vec::new();
    push_path(view, txn, &mut path)?;
    Ok(path)
}

fn push_path<B: Backend>(view: &View<'_, B>, txn: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
    let mut succeeded = true;
    for c in &txn.compare {
        if !evaluate(view, c)? {
            succeeded = false;
            break;
        }
    }
    path.push(succeeded);
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    for op in ops {
        if let RequestOp::Txn(nested) = op {
            push_path(view, nested, path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(result: CompareResult, target: CompareTarget) -> Compare {
        Compare {
            result,
            target,
            key: b"k".to_vec(),
            range_end: vec![],
        }
    }

    #[test]
    fn compare_results() {
        let kv = KeyValue {
            version: 2,
            mod_revision: 5,
            value: b"b".to_vec(),
            ..Default::default()
        };
        assert!(compare_kv(
            &cmp(CompareResult::Equal, CompareTarget::Version(2)),
            &kv
        ));
        assert!(compare_kv(
            &cmp(CompareResult::Greater, CompareTarget::Mod(4)),
            &kv
        ));
        assert!(!compare_kv(
            &cmp(CompareResult::Less, CompareTarget::Mod(5)),
            &kv
        ));
        assert!(compare_kv(
            &cmp(CompareResult::NotEqual, CompareTarget::Lease(1)),
            &kv
        ));
        assert!(compare_kv(
            &cmp(CompareResult::Less, CompareTarget::Value(b"c".to_vec())),
            &kv
        ));
        let missing = KeyValue::default();
        assert!(compare_kv(
            &cmp(CompareResult::Equal, CompareTarget::Create(0)),
            &missing
        ));
    }
}
