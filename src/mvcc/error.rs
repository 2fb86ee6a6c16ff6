//! The errors the MVCC store can return: what a client request, a corrupt or failing disk,
//! or a bad snapshot file can cause.
//!
//! Client-visible variants carry etcd's exact message (`Display`), because the Go client
//! rebuilds typed errors from the message text and Kubernetes compares them with `==`. The
//! API layer maps each variant to its gRPC code ([`MvccError::grpc_code`]). Bugs in this
//! module are not errors: they are `assert!`s.

use thiserror::Error;

/// Everything the store can refuse or fail with.
#[derive(Debug, Error)]
pub enum MvccError {
    /// The requested revision is below the compacted revision (OutOfRange).
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is above the current revision (OutOfRange).
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A Put had an empty key, or a Range an empty key (InvalidArgument).
    #[error("etcdserver: key is not provided")]
    KeyNotProvided,
    /// A Put with `ignore_value` or `ignore_lease` named a key that does not exist
    /// (InvalidArgument).
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A Put with `ignore_value` also carried a value (InvalidArgument).
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// A Put with `ignore_lease` also carried a lease (InvalidArgument).
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A Txn had more operations in compare, success or failure than allowed
    /// (InvalidArgument).
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A Txn branch writes the same key twice, or puts a key that one of its deletes covers
    /// (InvalidArgument).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A Range asked for a sort order or target value outside the enum (InvalidArgument).
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// A Put names a lease the lease checker does not know (NotFound).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// Bytes read from the backend do not decode: the disk or a bug corrupted them (DataLoss).
    #[error("mvcc: corrupt backend data: {0}")]
    Corrupt(String),
    /// A snapshot stream is truncated, has a bad header or a bad checksum.
    #[error("mvcc: invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// The backend failed an IO operation (Internal). The store must be reopened.
    #[error("mvcc: backend io error: {0}")]
    Backend(String),
    /// A previous commit failed half-way; the in-memory state may be ahead of the disk, so
    /// the store refuses all work until it is reopened.
    #[error("mvcc: store is poisoned by an earlier backend failure; reopen it")]
    Poisoned,
}

/// The gRPC status codes the API layer needs for [`MvccError`], by their canonical names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcCode {
    /// `INVALID_ARGUMENT` (3).
    InvalidArgument,
    /// `NOT_FOUND` (5).
    NotFound,
    /// `OUT_OF_RANGE` (11).
    OutOfRange,
    /// `INTERNAL` (13).
    Internal,
    /// `DATA_LOSS` (15).
    DataLoss,
}

impl MvccError {
    /// The gRPC code etcd answers this error with.
    pub fn grpc_code(&self) -> GrpcCode {
        use MvccError::*;
        match self {
            Compacted | FutureRevision => GrpcCode::OutOfRange,
            KeyNotProvided | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps
            | DuplicateKey | InvalidSortOption => GrpcCode::InvalidArgument,
            LeaseNotFound => GrpcCode::NotFound,
            Corrupt(_) | InvalidSnapshot(_) => GrpcCode::DataLoss,
            Backend(_) | Poisoned => GrpcCode::Internal,
        }
    }
}

impl From<std::io::Error> for MvccError {
    fn from(e: std::io::Error) -> Self {
        MvccError::Backend(e.to_string())
    }
}

impl From<sled::Error> for MvccError {
    fn from(e: sled::Error) -> Self {
        MvccError::Backend(e.to_string())
    }
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, MvccError>;
