//! The etcd v3 client the workloads use: one tonic channel per member, a timeout per
//! operation, and the rule that turns an error into `fail` or `info`.
//!
//! The rule (Jepsen's): `fail` only when the request certainly had no effect — the server
//! rejected it before proposing it (`InvalidArgument`, `FailedPrecondition`, ...) or a
//! transaction's compare failed. A timeout, `Unavailable`, a reset connection or anything
//! else unknown is `info`: the write may have been committed, or may still be. Reads change
//! nothing, so a read that errors is always `fail`; the workload applies that part.
//!
//! Called by the workloads and by the runner (leader lookup, readiness). It knows nothing
//! about histories.

use std::time::Duration;

use raftkv::proto::etcdserverpb::{
    kv_client::KvClient, maintenance_client::MaintenanceClient, RangeRequest, StatusRequest,
    TxnRequest, TxnResponse,
};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// How a failed request ended, from the history's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpError {
    /// Certainly no effect; the reason is for logs.
    Fail(String),
    /// Unknown effect (timeout, unavailable, connection lost).
    Info(String),
}

/// Maps a gRPC status onto [`OpError`].
pub fn classify(status: &tonic::Status) -> OpError {
    let reason = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::NotFound
        | Code::AlreadyExists
        | Code::Unimplemented => OpError::Fail(reason),
        _ => OpError::Info(reason),
    }
}

/// A lazily connected channel to one member (reconnects by itself after a restart).
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// A KV client on `channel` whose every call gives up after `timeout`.
#[derive(Clone)]
pub struct Client {
    kv: KvClient<Channel>,
    timeout: Duration,
}

impl Client {
    /// A client sharing `channel`.
    pub fn new(channel: Channel, timeout: Duration) -> Client {
        Client {
            kv: KvClient::new(channel),
            timeout,
        }
    }

    /// A linearizable range of one key: its value and mod revision, `None` if missing.
    pub async fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, i64)>, OpError> {
        let request = RangeRequest {
            key: key.as_bytes().to_vec().into(),
            ..Default::default()
        };
        let call = self.kv.range(request);
        let response = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => return Err(OpError::Info("client timeout".into())),
            Ok(Err(status)) => return Err(classify(&status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        Ok(response
            .kvs
            .first()
            .map(|kv| (kv.value.to_vec(), kv.mod_revision)))
    }

    /// Runs a transaction; its `succeeded` flag is the caller's to interpret.
    pub async fn txn(&mut self, request: TxnRequest) -> Result<TxnResponse, OpError> {
        let call = self.kv.txn(request);
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(OpError::Info("client timeout".into())),
            Ok(Err(status)) => Err(classify(&status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }
}

/// Asks every member for its status and returns the index of the member every answering
/// member agrees is leader, or `None` (no answer, no leader, disagreement).
pub async fn leader(urls: &[String], timeout: Duration) -> Option<usize> {
    let mut member_ids = vec![None; urls.len()];
    let mut leader_ids = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let Ok(channel) = channel(url) else { continue };
        let mut client = MaintenanceClient::new(channel);
        let call = client.status(StatusRequest {});
        if let Ok(Ok(response)) = tokio::time::timeout(timeout, call).await {
            let status = response.into_inner();
            member_ids[i] = status.header.map(|h| h.member_id);
            if status.leader != 0 {
                leader_ids.push(status.leader);
            }
        }
    }
    let first = *leader_ids.first()?;
    if leader_ids.iter().any(|&id| id != first) {
        return None;
    }
    member_ids.iter().position(|id| *id == Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timeouts and unavailability are unknown outcomes; rejections are certain failures.
    #[test]
    fn classify_keeps_unknown_outcomes_as_info() {
        let info = [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Internal,
        ];
        for code in info {
            assert!(
                matches!(classify(&tonic::Status::new(code, "x")), OpError::Info(_)),
                "{code:?}"
            );
        }
        let fail = [Code::InvalidArgument, Code::FailedPrecondition];
        for code in fail {
            assert!(
                matches!(classify(&tonic::Status::new(code, "x")), OpError::Fail(_)),
                "{code:?}"
            );
        }
    }
}
