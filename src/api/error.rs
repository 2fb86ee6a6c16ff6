//! The one place a [`ServerError`] becomes a gRPC [`tonic::Status`].
//!
//! etcd's clients rebuild typed errors from the exact status message (the Go client compares
//! strings, Kubernetes turns `mvcc: required revision has been compacted` into HTTP 410), so
//! the code and the message pass through byte for byte: the server layer owns both
//! ([`ServerError::code`], [`ServerError::message`]); this file must not reword them.
//!
//! Called by every service in `src/api/` through `?` on a `Result<_, ServerError>`.

use tonic::Status;

use crate::server::ServerError;

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        Status::new(e.code(), e.message())
    }
}

/// The status for an RPC raftkv does not serve yet: etcd's clients treat Unimplemented as
/// permanent (never retried), which is the truth.
pub fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!("raftkv: {rpc} is not implemented yet"))
}
