//! Joining a running cluster: the `RaftPeer.Members` RPC, both ends.
//!
//! A member started with `--initial-cluster-state existing` and an empty data dir does not
//! know the cluster id, its own member id (MemberAdd chose it) nor the other members.
//! Before its server starts, [`fetch_cluster`] asks the peer URLs of `--initial-cluster`
//! (all but its own) for them, one after the other, until one answers; the answer becomes
//! the server's [`ExistingCluster`]. [`members_response`] is the serving side, called by
//! `service.rs` with the running member's inbox.
//!
//! Only identity and membership travel here: the data comes afterwards through Raft (log
//! entries or a snapshot from the leader). Called by `src/api/run.rs`.

use std::time::{Duration, Instant};

use super::connect::{dial, DialOptions};
use crate::proto::raftkvpb::raft_peer_client::RaftPeerClient;
use crate::proto::raftkvpb::{MembersRequest, MembersResponse};
use crate::server::{ExistingCluster, RaftInbox};

/// How long a joining member keeps asking before it gives up (the members it names may
/// still be starting).
pub const JOIN_DEADLINE: Duration = Duration::from_secs(30);

/// The status message a member sends back to a removed member that still sends it Raft
/// messages; the removed member stops when it reads it (etcd answers such peers
/// "the member has been permanently removed from the cluster" too).
pub const MEMBER_REMOVED: &str = "raftkv: the member has been permanently removed from the cluster";

/// How long a joining member keeps asking when the answers do not list it yet: the
/// member that served MemberAdd has applied it, another may be a moment behind.
pub const NOT_LISTED_PATIENCE: Duration = Duration::from_secs(5);

/// Pause between two rounds over the peer URLs.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Per-call limit of one `Members` request.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a member could not learn the cluster it joins.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `--initial-cluster` names no member besides this one.
    #[error("--initial-cluster-state existing: --initial-cluster names no other member to ask")]
    NoPeers,
    /// No member answered in time; the last failure says why.
    #[error("no member of --initial-cluster answered within {deadline:?} (last error: {last})")]
    Unreachable {
        /// How long we tried.
        deadline: Duration,
        /// The last failure.
        last: String,
    },
}

/// What this member answers a joining one.
pub fn members_response(inbox: &dyn RaftInbox) -> MembersResponse {
    MembersResponse {
        cluster_id: inbox.cluster_id(),
        members: inbox.members(),
    }
}

/// Asks `peer_urls` (the other members' peer URLs) for the cluster until one answers
/// with a member list that has a member at `own_urls`; an answer without one is
/// returned after [`NOT_LISTED_PATIENCE`] (the server then refuses to start, saying
/// why). Fails when nobody answers within [`JOIN_DEADLINE`].
pub async fn fetch_cluster(
    peer_urls: &[String],
    own_urls: &[String],
) -> Result<ExistingCluster, JoinError> {
    if peer_urls.is_empty() {
        return Err(JoinError::NoPeers);
    }
    let started = Instant::now();
    let mut last = String::new();
    let mut unlisted = None;
    loop {
        for url in peer_urls {
            match ask(url).await {
                Ok(cluster) if lists(&cluster, own_urls) => {
                    tracing::info!(
                        peer = %url,
                        cluster_id = format!("{:x}", cluster.cluster_id),
                        members = cluster.members.len(),
                        "learned the cluster to join"
                    );
                    return Ok(cluster);
                }
                Ok(cluster) => unlisted = Some(cluster),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        if let Some(cluster) = unlisted.take() {
            if started.elapsed() >= NOT_LISTED_PATIENCE {
                return Ok(cluster);
            }
        }
        if started.elapsed() >= JOIN_DEADLINE {
            return Err(JoinError::Unreachable {
                deadline: JOIN_DEADLINE,
                last,
            });
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Whether `cluster` has a member reached at exactly `own_urls`.
fn lists(cluster: &ExistingCluster, own_urls: &[String]) -> bool {
    let sorted = |u: &[String]| {
        let mut v = u.to_vec();
        v.sort_unstable();
        v
    };
    let own = sorted(own_urls);
    cluster.members.iter().any(|m| sorted(&m.peer_ur_ls) == own)
}

async fn ask(url: &str) -> Result<ExistingCluster, String> {
    let call = async {
        let channel = dial(url, &DialOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let resp = RaftPeerClient::new(channel)
            .members(MembersRequest {})
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        Ok::<_, String>(resp)
    };
    let resp = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))??;
    if resp.members.is_empty() || resp.cluster_id == 0 {
        return Err("answered without a member list".into());
    }
    Ok(ExistingCluster {
        cluster_id: resp.cluster_id,
        members: resp.members,
    })
}
