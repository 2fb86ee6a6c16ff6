//! [`ServerError`]: everything a client request or the server's start can fail with, with
//! etcd's exact gRPC code and message so the API layer can map it 1:1.
//!
//! Bugs are not errors here: the driver asserts. A WAL or backend failure in the driver
//! stops the member (it answers [`ServerError::Stopped`] afterwards) rather than serving
//! state it cannot trust.

use thiserror::Error;

use crate::mvcc::{GrpcCode, MvccError};

/// Errors callers of [`super::EtcdServer`] can see.
#[derive(Debug, Error)]
pub enum ServerError {
    /// No leader has been known for an election timeout (Unavailable).
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request was not applied in time (Unavailable). It may still be applied later.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The leader changed while a request or read was in flight (Unavailable).
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// Too many committed entries wait to be applied (ResourceExhausted).
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// The server is stopped or stopping (Unavailable).
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The encoded request exceeds `max_request_bytes` (InvalidArgument).
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// The backend has reached `quota_backend_bytes` (ResourceExhausted).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The CORRUPT alarm is active: writes, compactions and lease grants/revokes are
    /// refused (DataLoss), as by etcd's corrupt applier.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// This member is a learner and the RPC is not one a learner serves (only Status and
    /// serializable Range are; FailedPrecondition, etcd 3.6's code, as in ETCD-API.md).
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// The store refused the request, with etcd's message verbatim.
    #[error("{0}")]
    Mvcc(#[from] MvccError),
    /// A leader-only request (MoveLeader, lease renewals and TTL lookups) reached a
    /// follower (FailedPrecondition); the API layer forwards lease requests to the leader.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// MoveLeader to a member that is not a voter of this cluster (FailedPrecondition).
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// A leader transfer did not finish in time (Unavailable).
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// LeaseGrant with an id in use (FailedPrecondition).
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A lease request names an unknown lease (NotFound).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// LeaseGrant with a TTL above 9e9 s (OutOfRange).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// MemberAdd/MemberUpdate with a peer URL that is not `http://host:port`
    /// (InvalidArgument).
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// MemberAdd/MemberUpdate with a peer URL another member uses (FailedPrecondition).
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// A membership request names an unknown member (NotFound).
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// The strict reconfiguration check found a voter not connected to the leader for the
    /// last 5 s (Unavailable; etcd's `ErrUnhealthy`).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// A logged MemberAdd names an id that is already a member (FailedPrecondition); only
    /// two racing adds can get there.
    #[error("etcdserver: member ID already exist")]
    MemberIdExists,
    /// MemberPromote of a voter (FailedPrecondition).
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// MemberPromote of a learner holding less than 90% of the leader's log
    /// (FailedPrecondition).
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// MemberAdd of a second learner (FailedPrecondition).
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// The strict reconfiguration check: the change would leave fewer started voters than
    /// the new configuration's quorum (FailedPrecondition).
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// The configuration or the data dir does not allow starting (start only).
    #[error("raftkv: bad configuration: {0}")]
    Config(String),
    /// The WAL, the store or the data dir failed an IO operation or is corrupt (Internal).
    #[error("raftkv: storage failure: {0}")]
    Storage(String),
    /// A peer sent a snapshot image that does not verify, or from another cluster.
    #[error("raftkv: invalid snapshot: {0}")]
    InvalidSnapshot(String),
}

impl ServerError {
    /// The gRPC status code etcd answers this error with.
    pub fn code(&self) -> tonic::Code {
        use ServerError::*;
        match self {
            NoLeader | Timeout | LeaderChanged | Stopped | LeaderTransferTimeout | Unhealthy => {
                tonic::Code::Unavailable
            }
            NotLeader | BadLeaderTransferee | NotSupportedForLearner => {
                tonic::Code::FailedPrecondition
            }
            PeerUrlExists
            | MemberNotLearner
            | MemberIdExists
            | LearnerNotReady
            | TooManyLearners
            | NotEnoughStartedMembers => tonic::Code::FailedPrecondition,
            MemberNotFound => tonic::Code::NotFound,
            MemberBadUrls => tonic::Code::InvalidArgument,
            LeaseExists => tonic::Code::FailedPrecondition,
            LeaseNotFound => tonic::Code::NotFound,
            LeaseTtlTooLarge => tonic::Code::OutOfRange,
            TooManyRequests | NoSpace => tonic::Code::ResourceExhausted,
            RequestTooLarge | Config(_) => tonic::Code::InvalidArgument,
            Storage(_) => tonic::Code::Internal,
            InvalidSnapshot(_) | Corrupt => tonic::Code::DataLoss,
            Mvcc(e) => match e.grpc_code() {
                GrpcCode::InvalidArgument => tonic::Code::InvalidArgument,
                GrpcCode::NotFound => tonic::Code::NotFound,
                GrpcCode::OutOfRange => tonic::Code::OutOfRange,
                GrpcCode::Internal => tonic::Code::Internal,
                GrpcCode::DataLoss => tonic::Code::DataLoss,
            },
        }
    }

    /// The status message etcd sends (e.g. `"etcdserver: no leader"`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl From<crate::wal::WalError> for ServerError {
    fn from(e: crate::wal::WalError) -> Self {
        ServerError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_are_etcds() {
        assert_eq!(ServerError::NoLeader.code(), tonic::Code::Unavailable);
        assert_eq!(ServerError::NoLeader.message(), "etcdserver: no leader");
        assert_eq!(
            ServerError::TooManyRequests.code(),
            tonic::Code::ResourceExhausted
        );
        let e = ServerError::from(MvccError::Compacted);
        assert_eq!(e.code(), tonic::Code::OutOfRange);
        assert_eq!(
            e.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
    }
}
