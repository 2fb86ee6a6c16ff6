//! The corruption checks' network side: asking peers for `HashKV` over their published
//! client URLs (a tonic Maintenance client), the initial check the binary runs before it
//! serves clients, and the periodic check task on the leader.
//!
//! etcd 3.4+ asks a peer's *peer* URL (`/members/hashkv`); raftkv asks the peer's client
//! URL through the ordinary `Maintenance.HashKV` RPC instead, which answers the same three
//! numbers and needs no extra endpoint on the peer transport. The price: a peer that has
//! not published its client URLs yet (ClusterMemberAttrSet) cannot be asked and is skipped,
//! as an unreachable one is.
//!
//! The verdicts are the server's ([`crate::server::initial_mismatches`],
//! [`crate::server::periodic_suspect`]); this file only fetches and schedules. Called by
//! `run.rs`.

use std::time::Duration;

use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use crate::mvcc::KvHash;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::HashKvRequest;
use crate::server::{initial_mismatches, periodic_suspect, EtcdServer, PeerAnswer, PeerHash};

/// How long dialling one peer URL may take before the peer counts as unreachable.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// etcd's initial check: hashes this member's store at its current revision and compares
/// it with every peer's hash at that revision. `Err` carries etcd's message
/// (`<member id> found data inconsistency with peers`) when a peer with the same compacted
/// revision hashed differently; the member must then not serve.
pub async fn initial_corrupt_check(server: &EtcdServer) -> Result<(), String> {
    let me = format!("{:x}", server.member_id());
    tracing::info!(
        local_member_id = %me,
        timeout = ?server.request_timeout(),
        "starting initial corruption check"
    );
    let local = local_hash(server)
        .await
        .map_err(|e| format!("{me} failed to fetch hash ({e})"))?;
    let peers = peer_hashes(server, local.hash_revision).await;
    if initial_mismatches(&local, &peers) > 0 {
        return Err(format!("{me} found data inconsistency with peers"));
    }
    let compared = peers
        .iter()
        .filter(|p| matches!(p.answer, PeerAnswer::Hash { .. }))
        .count();
    tracing::info!(
        local_member_id = %me,
        number_of_peers_checked = compared,
        "initial corruption checking passed; no corruption"
    );
    Ok(())
}

/// Runs etcd's periodic check every `interval` while this member leads, raising CORRUPT
/// for the member [`periodic_suspect`] names. Ends when the server stops.
pub fn spawn_corrupt_monitor(server: EtcdServer, interval: Duration) {
    tracing::info!(interval = ?interval, "enabled corruption checking");
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if server.is_stopped() {
                return;
            }
            if !server.is_leader() {
                continue;
            }
            if let Err(e) = periodic_check(&server).await {
                tracing::warn!(error = %e, "failed to check hash KV");
            }
        }
    });
}

/// One periodic round (etcd's `periodicCheck`).
async fn periodic_check(server: &EtcdServer) -> Result<(), String> {
    let first = local_hash(server).await?;
    let peers = peer_hashes(server, first.hash_revision).await;
    server
        .linearizable_barrier()
        .await
        .map_err(|e| e.message())?;
    let second = local_hash(server).await?;
    let checked = peers
        .iter()
        .filter(|p| matches!(p.answer, PeerAnswer::Hash { .. }))
        .count();
    if let Some(suspect) = periodic_suspect(server.member_id(), &first, &second, &peers) {
        server
            .raise_corrupt_alarm(suspect)
            .await
            .map_err(|e| e.message())?;
    }
    // Info, as etcd logs it: the interval is the operator's (minutes in production).
    tracing::info!(
        number_of_peers_checked = checked,
        "finished peer corruption check"
    );
    Ok(())
}

/// This member's HashKV at its current revision, on a blocking thread (it reads the whole
/// key bucket).
async fn local_hash(server: &EtcdServer) -> Result<KvHash, String> {
    let server = server.clone();
    tokio::task::spawn_blocking(move || server.hash_kv(0))
        .await
        .map_err(|e| format!("hash task failed: {e}"))?
        .map_err(|e| e.message())
}

/// Every peer's answer to `HashKV(revision)`, asked concurrently.
async fn peer_hashes(server: &EtcdServer, revision: i64) -> Vec<PeerHash> {
    let timeout = server.request_timeout();
    let mut asks = JoinSet::new();
    for (member_id, client_urls) in server.peer_client_urls() {
        asks.spawn(async move {
            let answer = ask_peer(&client_urls, revision, timeout).await;
            PeerHash {
                member_id,
                client_urls,
                answer,
            }
        });
    }
    let mut peers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        peers.push(joined.expect("a HashKV ask panicked"));
    }
    peers.sort_by_key(|p| p.member_id);
    peers
}

/// Tries the peer's client URLs in order until one answers.
async fn ask_peer(urls: &[String], revision: i64, timeout: Duration) -> PeerAnswer {
    let mut last_error = "no client URLs published".to_string();
    for url in urls {
        // The whole ask is bounded: a peer that accepts connections but does not answer
        // (bound, still in its own initial check) must not hold this one up.
        let asked =
            tokio::time::timeout(DIAL_TIMEOUT + timeout, hash_kv_at(url, revision, timeout));
        let outcome = asked
            .await
            .unwrap_or_else(|_| Err("no answer within the request timeout".to_string()));
        match outcome {
            Ok(answer) => return answer,
            Err(e) => {
                tracing::warn!(
                    remote_peer_endpoint = %url,
                    requested_revision = revision,
                    error = %e,
                    "failed hash kv request"
                );
                last_error = e;
            }
        }
    }
    PeerAnswer::Unreachable(last_error)
}

/// One HashKV RPC to `url`. The peer's "compacted" and "future revision" refusals are
/// answers, not failures.
async fn hash_kv_at(url: &str, revision: i64, timeout: Duration) -> Result<PeerAnswer, String> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(DIAL_TIMEOUT)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| crate::ctl::client::error_chain(&e))?;
    let mut request = tonic::Request::new(HashKvRequest { revision });
    // A learner answers peers' corruption checks (as etcd's do on its peer port).
    request.metadata_mut().insert(
        super::learner::PEER_CHECK_HEADER,
        "1".parse().expect("ascii"),
    );
    let reply = MaintenanceClient::new(channel).hash_kv(request).await;
    match reply {
        Ok(reply) => {
            let r = reply.into_inner();
            Ok(PeerAnswer::Hash {
                revision: r.header.map_or(0, |h| h.revision),
                // etcd 3.4 and raftkv answer -1 when nothing was ever compacted.
                compact_revision: r.compact_revision.max(0),
                hash: r.hash,
            })
        }
        Err(status)
            if status
                .message()
                .ends_with("required revision has been compacted") =>
        {
            Ok(PeerAnswer::Compacted)
        }
        Err(status)
            if status
                .message()
                .ends_with("required revision is a future revision") =>
        {
            Ok(PeerAnswer::FutureRevision)
        }
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_that_never_answers_is_unreachable() {
        // Bound but never accepted: the connection opens, nothing ever answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let answer = ask_peer(&[url], 5, Duration::from_millis(200)).await;
        assert!(matches!(answer, PeerAnswer::Unreachable(_)), "{answer:?}");
        let none = ask_peer(&[], 5, Duration::from_millis(200)).await;
        assert_eq!(
            none,
            PeerAnswer::Unreachable("no client URLs published".to_string())
        );
    }
}
