//! Data corruption checks (etcd's `corrupt.go`): the rules that decide, from HashKV answers,
//! whether members' stores have diverged, and the CORRUPT gate on writes.
//!
//! Two checks compare this member's [`KvHash`] with its peers' HashKV at the same revision:
//!
//! - the initial check (`--experimental-initial-corrupt-check`), before a restarted member
//!   serves clients: a peer whose hash differs at the same compacted revision is a mismatch,
//!   and any mismatch stops the start ([`initial_mismatches`]);
//! - the periodic check (`--experimental-corrupt-check-time`), on the leader: it hashes,
//!   asks every follower for its hash at that revision, waits for a ReadIndex round and
//!   hashes again; [`periodic_suspect`] names the member to raise CORRUPT for, by etcd's
//!   rules plus one majority rule so that a rotten leader is named itself (see there).
//!
//! Worked example (periodic, 3 members, nothing compacted): the leader hashes revision 7 as
//! `0xaa`; follower B answers `{revision 7, compact 0, hash 0xaa}`, follower C answers
//! `{revision 7, compact 0, hash 0xbb}` (one of its values rotted on disk). C has the
//! leader's compacted revision and a different hash: C is the suspect, and the leader
//! proposes `AlarmRequest{ACTIVATE, member C, CORRUPT}`; every member then lists
//! `memberID:<C> alarm:CORRUPT` and refuses writes until an operator disarms it.
//!
//! While CORRUPT is active anywhere, the requests etcd's corrupt applier refuses (Put,
//! DeleteRange, Txn with writes, Compaction, LeaseGrant, LeaseRevoke) fail with
//! `etcdserver: corrupt cluster` ([`ServerError::Corrupt`], DataLoss); reads, read-only txns
//! and alarm requests go on. raftkv refuses at proposal time (as its NOSPACE gate does),
//! etcd at apply time: the difference is only which error an entry already in flight when
//! the alarm applies gets.
//!
//! No gRPC here: fetching peers' hashes over their client URLs and the timers live in
//! `src/api/corrupt_check.rs`, which calls these rules and methods.

use super::{EtcdServer, ServerError};
use crate::mvcc::KvHash;
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::internal_request::Request;
use pb::alarm_request::AlarmAction;

/// What one peer answered to `HashKV(revision)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAnswer {
    /// The peer's hash at the asked revision.
    Hash {
        /// The peer's current revision when it answered (its response header's).
        revision: i64,
        /// The peer's compacted revision (0 when it never compacted).
        compact_revision: i64,
        /// The CRC32C of the peer's store up to the asked revision.
        hash: u32,
    },
    /// The peer compacted past the revision: this member is behind; nothing to compare.
    Compacted,
    /// The peer has not reached the revision yet (a slow peer); nothing to compare.
    FutureRevision,
    /// No client URL of the peer answered (down, not published yet, another error).
    Unreachable(String),
}

/// One peer of this member and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHash {
    /// The peer's member id.
    pub member_id: u64,
    /// The client URLs that were tried.
    pub client_urls: Vec<String>,
    /// What it answered.
    pub answer: PeerAnswer,
}

/// The initial check's verdict for `local` (this member's hash at its current revision):
/// how many peers hashed the same revision at the same compacted revision to a different
/// value. Peers that are slow, compacted past it or unreachable are logged and skipped, as
/// are hashes at a different compacted revision (they cover different histories).
pub fn initial_mismatches(local: &KvHash, peers: &[PeerHash]) -> usize {
    let mut mismatches = 0;
    for p in peers {
        let peer_id = format!("{:x}", p.member_id);
        match &p.answer {
            PeerAnswer::Hash {
                hash,
                compact_revision,
                revision,
            } if *hash != local.hash => {
                let same_history = *compact_revision == local.compact_revision;
                tracing::warn!(
                    local_member_revision = local.hash_revision,
                    local_member_compact_revision = local.compact_revision,
                    local_member_hash = local.hash,
                    remote_peer_id = %peer_id,
                    remote_peer_revision = revision,
                    remote_peer_compact_revision = compact_revision,
                    remote_peer_hash = hash,
                    "{}",
                    if same_history {
                        "found different hash values from remote peer"
                    } else {
                        "found different compact revision values from remote peer"
                    }
                );
                mismatches += usize::from(same_history);
            }
            PeerAnswer::Hash { .. } => {}
            PeerAnswer::FutureRevision => tracing::warn!(
                remote_peer_id = %peer_id,
                local_member_revision = local.hash_revision,
                "cannot fetch hash from slow remote peer"
            ),
            PeerAnswer::Compacted => tracing::warn!(
                remote_peer_id = %peer_id,
                local_member_revision = local.hash_revision,
                "cannot fetch hash from remote peer; local member is behind"
            ),
            PeerAnswer::Unreachable(error) => tracing::warn!(
                remote_peer_id = %peer_id,
                remote_peer_endpoints = ?p.client_urls,
                %error,
                "failed hash kv request; skipping the peer"
            ),
        }
    }
    mismatches
}

/// etcd's periodic rules, run on the leader (`me`): `first` is its hash before asking the
/// peers (who hashed at `first.hash_revision`), `second` its hash at its current revision
/// after a ReadIndex round. The first rule that fires names the suspect (etcd raises one
/// alarm per check):
///
/// 1. the leader's own hash changed while its revision and compacted revision did not:
///    the leader's store changed under it, so the leader is the suspect;
/// 2. a majority of the cluster (followers with the leader's compacted revision) agree on
///    a hash that is not the leader's: the leader is the odd one out, so it is the suspect
///    (the rule etcd 3.6's compaction hash check applies; etcd's periodic check would name
///    the first follower instead, a healthy member);
/// 3. a follower's revision is ahead of the leader's after the barrier, or
/// 4. its compacted revision is ahead of the leader's: that follower is the suspect;
/// 5. a follower with the leader's compacted revision hashed the same revision differently:
///    that follower is the suspect.
pub fn periodic_suspect(
    me: u64,
    first: &KvHash,
    second: &KvHash,
    peers: &[PeerHash],
) -> Option<u64> {
    if second.hash != first.hash
        && second.hash_revision == first.hash_revision
        && second.compact_revision == first.compact_revision
    {
        tracing::warn!(
            revision = first.hash_revision,
            hash_1 = first.hash,
            hash_2 = second.hash,
            "found hash mismatch"
        );
        return Some(me);
    }
    if let Some(majority_hash) = majority_against(first, peers) {
        tracing::warn!(
            revision = first.hash_revision,
            leader_hash = first.hash,
            majority_hash,
            "the leader's hash differs from the majority of the cluster"
        );
        return Some(me);
    }
    peers.iter().find_map(|p| {
        let PeerAnswer::Hash {
            revision,
            compact_revision,
            hash,
        } = p.answer
        else {
            return None;
        };
        let why = if revision > second.hash_revision {
            "revision from follower must be less than or equal to leader's"
        } else if compact_revision > second.compact_revision {
            "compact revision from follower must be less than or equal to leader's"
        } else if compact_revision == first.compact_revision && hash != first.hash {
            "same compact revision then hashes must match"
        } else {
            return None;
        };
        tracing::warn!(
            follower_peer_id = format!("{:x}", p.member_id),
            leader_revision = second.hash_revision,
            leader_compact_revision = first.compact_revision,
            leader_hash = first.hash,
            follower_revision = revision,
            follower_compact_revision = compact_revision,
            follower_hash = hash,
            "{why}"
        );
        Some(p.member_id)
    })
}

/// A hash other than the leader's that more than half of the cluster (the leader and
/// `peers`) reported at the leader's compacted revision, if any.
fn majority_against(leader: &KvHash, peers: &[PeerHash]) -> Option<u32> {
    let cluster_size = peers.len() + 1;
    let mut counts: std::collections::BTreeMap<u32, usize> = Default::default();
    for p in peers {
        if let PeerAnswer::Hash {
            compact_revision,
            hash,
            ..
        } = p.answer
        {
            if compact_revision == leader.compact_revision && hash != leader.hash {
                *counts.entry(hash).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .find(|&(_, count)| 2 * count > cluster_size)
        .map(|(hash, _)| hash)
}

impl EtcdServer {
    /// Every other member with the client URLs it published (possibly none yet).
    pub fn peer_client_urls(&self) -> Vec<(u64, Vec<String>)> {
        let me = self.member_id();
        let members = self
            .shared()
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner());
        members
            .values()
            .filter(|m| m.id != me)
            .map(|m| (m.id, m.client_ur_ls.clone()))
            .collect()
    }

    /// Whether this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.member_id())
    }

    /// How long one request may take (etcd's request timeout: 5 s + 2 election timeouts).
    pub fn request_timeout(&self) -> std::time::Duration {
        self.shared().request_timeout()
    }

    /// Raises CORRUPT for `member` through the log (unless it is already raised).
    pub async fn raise_corrupt_alarm(&self, member: u64) -> Result<(), ServerError> {
        let raised = {
            let set = self
                .shared()
                .alarms
                .read()
                .unwrap_or_else(|e| e.into_inner());
            set.has_for(member, pb::AlarmType::Corrupt)
        };
        if raised {
            return Ok(());
        }
        tracing::error!(
            member = format!("{member:x}"),
            "data corruption detected: raising the CORRUPT alarm"
        );
        let activate = pb::AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: member,
            alarm: pb::AlarmType::Corrupt as i32,
        };
        self.alarm(activate).await.map(drop)
    }

    /// etcd's corrupt applier: while CORRUPT is active, refuses the requests that would
    /// change the store or the leases (see the module docs).
    pub(super) fn check_not_corrupt(&self, request: &Request) -> Result<(), ServerError> {
        let refused = matches!(
            request,
            Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
        );
        if !refused {
            return Ok(());
        }
        let set = self
            .shared()
            .alarms
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if set.has(pb::AlarmType::Corrupt) {
            return Err(ServerError::Corrupt);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(revision: i64, compact: i64, hash: u32) -> KvHash {
        KvHash {
            hash,
            compact_revision: compact,
            hash_revision: revision,
        }
    }

    fn peer(id: u64, revision: i64, compact: i64, hash: u32) -> PeerHash {
        PeerHash {
            member_id: id,
            client_urls: vec![],
            answer: PeerAnswer::Hash {
                revision,
                compact_revision: compact,
                hash,
            },
        }
    }

    fn silent(id: u64, answer: PeerAnswer) -> PeerHash {
        PeerHash {
            member_id: id,
            client_urls: vec![],
            answer,
        }
    }

    #[test]
    fn initial_counts_only_same_history_mismatches() {
        let local = kv(7, 3, 0xaa);
        assert_eq!(initial_mismatches(&local, &[peer(2, 9, 3, 0xaa)]), 0);
        assert_eq!(initial_mismatches(&local, &[peer(2, 9, 3, 0xbb)]), 1);
        // A different compacted revision hashes a different history: not a mismatch.
        assert_eq!(initial_mismatches(&local, &[peer(2, 9, 5, 0xbb)]), 0);
        let skipped = [
            silent(2, PeerAnswer::Compacted),
            silent(3, PeerAnswer::FutureRevision),
            silent(4, PeerAnswer::Unreachable("connection refused".into())),
        ];
        assert_eq!(initial_mismatches(&local, &skipped), 0);
        let two = [peer(2, 7, 3, 0xbb), peer(3, 7, 3, 0xcc)];
        assert_eq!(initial_mismatches(&local, &two), 2);
    }

    #[test]
    fn periodic_names_the_diverging_follower() {
        let h = kv(7, 0, 0xaa);
        let peers = [peer(2, 7, 0, 0xaa), peer(3, 7, 0, 0xbb)];
        assert_eq!(periodic_suspect(1, &h, &h, &peers), Some(3));
        let agree = [peer(2, 7, 0, 0xaa), peer(3, 6, 0, 0xaa)];
        assert_eq!(periodic_suspect(1, &h, &h, &agree), None);
        // Unanswered peers are skipped.
        let quiet = [silent(2, PeerAnswer::Unreachable("down".into()))];
        assert_eq!(periodic_suspect(1, &h, &h, &quiet), None);
    }

    #[test]
    fn periodic_leader_outvoted_by_a_majority_is_suspect() {
        let h = kv(7, 0, 0xaa);
        let outvoted = [peer(2, 7, 0, 0xbb), peer(3, 7, 0, 0xbb)];
        assert_eq!(periodic_suspect(1, &h, &h, &outvoted), Some(1));
        // Two followers that disagree with the leader and with each other outvote nobody.
        let split = [peer(2, 7, 0, 0xbb), peer(3, 7, 0, 0xcc)];
        assert_eq!(periodic_suspect(1, &h, &h, &split), Some(2));
        // Five members: two agreeing followers are not a majority.
        let five = [
            peer(2, 7, 0, 0xbb),
            peer(3, 7, 0, 0xbb),
            peer(4, 7, 0, 0xaa),
            peer(5, 7, 0, 0xaa),
        ];
        assert_eq!(periodic_suspect(1, &h, &h, &five), Some(2));
    }

    #[test]
    fn periodic_follower_ahead_of_the_leader_is_suspect() {
        let h = kv(7, 2, 0xaa);
        let ahead = [peer(2, 8, 2, 0xaa)];
        assert_eq!(periodic_suspect(1, &h, &h, &ahead), Some(2));
        let compacted_ahead = [peer(3, 7, 4, 0x11)];
        assert_eq!(periodic_suspect(1, &h, &h, &compacted_ahead), Some(3));
        // A follower at an older compacted revision hashes another history: no verdict.
        let behind = [peer(2, 7, 1, 0x11)];
        assert_eq!(periodic_suspect(1, &h, &h, &behind), None);
    }

    #[test]
    fn periodic_leader_whose_hash_changed_in_place_is_suspect() {
        let first = kv(7, 0, 0xaa);
        let second = kv(7, 0, 0xab);
        let peers = [peer(2, 7, 0, 0xbb)];
        assert_eq!(periodic_suspect(1, &first, &second, &peers), Some(1));
        // A new revision in between legitimately changes the hash.
        let moved = kv(8, 0, 0xab);
        assert_eq!(periodic_suspect(1, &first, &moved, &[]), None);
    }
}
