//! Conversions between etcd's protobufs (`etcdserverpb`, `mvccpb`) and the MVCC store's
//! request/response types, which mirror them field for field.
//!
//! Pure functions, no validation beyond what the types force: the store and
//! `mvcc::validate_*` check the values. Unknown enum numbers in a compare fall back to
//! prost's default (0), as etcd's Go decoder would keep them and never match.

use bytes::Bytes;

use crate::mvcc;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::{request_op, response_op};
use crate::proto::mvccpb;

/// A protobuf range request as the store's.
pub fn range_request(r: &pb::RangeRequest) -> Result<mvcc::RangeRequest, mvcc::MvccError> {
    Ok(mvcc::RangeRequest {
        key: r.key.to_vec(),
        range_end: r.range_end.to_vec(),
        limit: r.limit,
        revision: r.revision,
        sort_order: mvcc::SortOrder::from_i32(r.sort_order)?,
        sort_target: mvcc::SortTarget::from_i32(r.sort_target)?,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

/// A protobuf put request as the store's.
pub fn put_request(r: &pb::PutRequest) -> mvcc::PutRequest {
    mvcc::PutRequest {
        key: r.key.to_vec(),
        value: r.value.to_vec(),
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

/// A protobuf delete-range request as the store's.
pub fn delete_range_request(r: &pb::DeleteRangeRequest) -> mvcc::DeleteRangeRequest {
    mvcc::DeleteRangeRequest {
        key: r.key.to_vec(),
        range_end: r.range_end.to_vec(),
        prev_kv: r.prev_kv,
    }
}

fn compare(c: &pb::Compare) -> mvcc::Compare {
    let result = match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => mvcc::CompareResult::Equal,
        CompareResult::Greater => mvcc::CompareResult::Greater,
        CompareResult::Less => mvcc::CompareResult::Less,
        CompareResult::NotEqual => mvcc::CompareResult::NotEqual,
    };
    let num =
        |want: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(want).unwrap_or(0);
    let target = match CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version) {
        CompareTarget::Version => mvcc::CompareTarget::Version(num(|u| match u {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Create => mvcc::CompareTarget::Create(num(|u| match u {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Mod => mvcc::CompareTarget::Mod(num(|u| match u {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Lease => mvcc::CompareTarget::Lease(num(|u| match u {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        CompareTarget::Value => mvcc::CompareTarget::Value(match &c.target_union {
            Some(TargetUnion::Value(v)) => v.to_vec(),
            _ => Vec::new(),
        }),
    };
    mvcc::Compare {
        result,
        target,
        key: c.key.to_vec(),
        range_end: c.range_end.to_vec(),
    }
}

fn request_op(op: &pb::RequestOp) -> Result<mvcc::RequestOp, mvcc::MvccError> {
    Ok(match &op.request {
        Some(request_op::Request::RequestRange(r)) => mvcc::RequestOp::Range(range_request(r)?),
        Some(request_op::Request::RequestPut(r)) => mvcc::RequestOp::Put(put_request(r)),
        Some(request_op::Request::RequestDeleteRange(r)) => {
            mvcc::RequestOp::DeleteRange(delete_range_request(r))
        }
        Some(request_op::Request::RequestTxn(r)) => mvcc::RequestOp::Txn(txn_request(r)?),
        // An empty op is a range of the empty key, which the store refuses as etcd does.
        None => mvcc::RequestOp::Range(mvcc::RangeRequest::default()),
    })
}

/// A protobuf txn request as the store's.
pub fn txn_request(r: &pb::TxnRequest) -> Result<mvcc::TxnRequest, mvcc::MvccError> {
    let ops = |v: &[pb::RequestOp]| v.iter().map(request_op).collect::<Result<Vec<_>, _>>();
    Ok(mvcc::TxnRequest {
        compare: r.compare.iter().map(compare).collect(),
        success: ops(&r.success)?,
        failure: ops(&r.failure)?,
    })
}

/// A stored key-value as the protobuf one.
pub fn key_value(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: Bytes::from(kv.key),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: Bytes::from(kv.value),
        lease: kv.lease,
    }
}

/// The store's range response as the protobuf one, with `header`.
pub fn range_response(r: mvcc::RangeResponse, header: pb::ResponseHeader) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(header),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

/// The store's put response as the protobuf one, with `header`.
pub fn put_response(r: mvcc::PutResponse, header: pb::ResponseHeader) -> pb::PutResponse {
    pb::PutResponse {
        header: Some(header),
        prev_kv: r.prev_kv.map(key_value),
    }
}

/// The store's delete-range response as the protobuf one, with `header`.
pub fn delete_range_response(
    r: mvcc::DeleteRangeResponse,
    header: pb::ResponseHeader,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: Some(header),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// The store's txn response as the protobuf one. As in etcd, only the outer header is
/// complete: nested responses' headers carry just the revision.
pub fn txn_response(r: mvcc::TxnResponse, header: pb::ResponseHeader) -> pb::TxnResponse {
    let responses = r
        .responses
        .into_iter()
        .map(|op| {
            let h = pb::ResponseHeader {
                revision: header.revision,
                ..Default::default()
            };
            let response = match op {
                mvcc::ResponseOp::Range(x) => {
                    response_op::Response::ResponseRange(range_response(x, h))
                }
                mvcc::ResponseOp::Put(x) => response_op::Response::ResponsePut(put_response(x, h)),
                mvcc::ResponseOp::DeleteRange(x) => {
                    response_op::Response::ResponseDeleteRange(delete_range_response(x, h))
                }
                mvcc::ResponseOp::Txn(x) => response_op::Response::ResponseTxn(txn_response(x, h)),
            };
            pb::ResponseOp {
                response: Some(response),
            }
        })
        .collect();
    pb::TxnResponse {
        header: Some(header),
        succeeded: r.succeeded,
        responses,
    }
}
