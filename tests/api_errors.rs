//! The gRPC status every client-visible error becomes, checked against etcd's table
//! (ETCD-API.md section 4): code and message byte for byte, because etcd's clients rebuild
//! typed errors by comparing the message string, and Kubernetes maps the compacted error to
//! HTTP 410 by it.

use raftkv::mvcc::MvccError;
use raftkv::server::ServerError;
use tonic::{Code, Status};

/// (error, etcd's code, etcd's message).
fn table() -> Vec<(ServerError, Code, &'static str)> {
    use Code::*;
    vec![
        (ServerError::NoLeader, Unavailable, "etcdserver: no leader"),
        (
            ServerError::Timeout,
            Unavailable,
            "etcdserver: request timed out",
        ),
        (
            ServerError::LeaderChanged,
            Unavailable,
            "etcdserver: leader changed",
        ),
        (
            ServerError::Stopped,
            Unavailable,
            "etcdserver: server stopped",
        ),
        (
            ServerError::TooManyRequests,
            ResourceExhausted,
            "etcdserver: too many requests",
        ),
        (
            ServerError::RequestTooLarge,
            InvalidArgument,
            "etcdserver: request is too large",
        ),
        (
            ServerError::NoSpace,
            ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        ),
        (
            MvccError::Compacted.into(),
            OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        (
            MvccError::FutureRevision.into(),
            OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        (
            MvccError::KeyNotProvided.into(),
            InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            MvccError::KeyNotFound.into(),
            InvalidArgument,
            "etcdserver: key not found",
        ),
        (
            MvccError::ValueProvided.into(),
            InvalidArgument,
            "etcdserver: value is provided",
        ),
        (
            MvccError::LeaseProvided.into(),
            InvalidArgument,
            "etcdserver: lease is provided",
        ),
        (
            MvccError::TooManyOps.into(),
            InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        (
            MvccError::DuplicateKey.into(),
            InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ),
        (
            MvccError::InvalidSortOption.into(),
            InvalidArgument,
            "etcdserver: invalid sort option",
        ),
        (
            MvccError::LeaseNotFound.into(),
            NotFound,
            "etcdserver: requested lease not found",
        ),
    ]
}

#[test]
fn every_client_error_maps_to_etcds_code_and_message() {
    for (error, code, message) in table() {
        let debug = format!("{error:?}");
        let status = Status::from(error);
        assert_eq!(status.code(), code, "code of {debug}");
        assert_eq!(status.message(), message, "message of {debug}");
    }
}

#[test]
fn internal_failures_never_claim_to_be_retryable() {
    // Unavailable makes clients retry; a storage failure or corruption is permanent.
    let permanent = [
        ServerError::Storage("disk".into()),
        ServerError::from(MvccError::Corrupt("x".into())),
        ServerError::from(MvccError::Backend("io".into())),
    ];
    for error in permanent {
        let debug = format!("{error:?}");
        assert_ne!(Status::from(error).code(), Code::Unavailable, "{debug}");
    }
}

#[test]
fn unimplemented_rpcs_say_so() {
    let status = raftkv::api::unimplemented("Watch");
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("Watch"), "{}", status.message());
}
