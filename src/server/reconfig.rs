//! Runtime membership: MemberAdd, MemberRemove, MemberPromote and MemberUpdate of
//! [`EtcdServer`], with etcd's checks before anything is proposed.
//!
//! Add, remove and promote become one Raft `ConfChange` each (one server at a time, see
//! `src/raft/membership.rs`); the entry's `MemberContext` carries the new member's peer
//! URLs and the request id the apply loop answers under. MemberUpdate changes no Raft
//! configuration: it is a normal `ClusterMemberPeerUrlsSet` entry. The apply side is
//! `apply.rs`; the member records are `members.rs`.
//!
//! The checks read this member's view of the members (etcd's `ValidateConfigurationChange`
//! and `--strict-reconfig-check`, which etcd enables by default). A member is *started*
//! once it has published its name (`ClusterMemberAttrSet` after its first start): the
//! strict check refuses a change that would leave fewer started voters than the quorum of
//! the new configuration. Worked example: voters {a, b} started, learner c. Adding voter d
//! gives 3 voters, quorum 2, 2 started: allowed. Removing a (started) leaves {b}: quorum 1,
//! 1 started: allowed. With b stopped but published, it still counts as started (etcd
//! counts names, not connections).
//!
//! Response headers carry no revision, as etcd's Cluster answers.
//!
//! Promotion needs the leader's replication progress, so the driver checks it (see
//! `driver.rs`, `Input::ConfChange`); a follower answers `NotLeader` and the API layer
//! forwards the request to the leader. Nothing here touches the store or the network.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::shared::{Applied, Input};
use super::{EtcdServer, ServerError};
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::{self, internal_request::Request};
use crate::raft::{ConfChange, ConfChangeKind, ConfState, NodeId};

/// Learners a cluster may have at once (etcd's `--experimental-max-learners` default).
pub const LEARNERS_MAX: usize = 1;

/// A learner may be promoted once it holds this share of the leader's log (etcd's
/// `readyPercent`).
pub const LEARNER_READY_PERCENT: f64 = 0.9;

impl EtcdServer {
    /// MemberAdd: proposes a new voter or learner reached at `peer_urls`. Errors:
    /// `MemberBadUrls`, `PeerUrlExists`, `TooManyLearners`, `NotEnoughStartedMembers`.
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<pb::MemberAddResponse, ServerError> {
        let _serial = self.shared().reconfig.lock().await;
        let members = self.members_view();
        check_add(&members, &peer_urls, is_learner)?;
        let token = &self.shared().cfg.initial_cluster_token;
        let id = new_member_id(&members, &peer_urls, token);
        let kind = if is_learner {
            ConfChangeKind::AddLearner
        } else {
            ConfChangeKind::AddVoter
        };
        let list = self
            .propose_conf_change(kind, id, peer_urls.clone(), false)
            .await?;
        Ok(pb::MemberAddResponse {
            header: Some(self.shared().header(0)),
            member: Some(pb::Member {
                id,
                peer_ur_ls: peer_urls,
                is_learner,
                ..Default::default()
            }),
            members: list,
        })
    }

    /// MemberRemove: proposes removing member `id` (the leader included: it steps down
    /// once the removal is applied). Errors: `MemberNotFound`, `NotEnoughStartedMembers`.
    pub async fn member_remove(&self, id: u64) -> Result<pb::MemberRemoveResponse, ServerError> {
        let _serial = self.shared().reconfig.lock().await;
        check_remove(&self.members_view(), id)?;
        let members = self
            .propose_conf_change(ConfChangeKind::RemoveNode, id, Vec::new(), false)
            .await?;
        Ok(pb::MemberRemoveResponse {
            header: Some(self.shared().header(0)),
            members,
        })
    }

    /// MemberPromote: turns learner `id` into a voter. Runs on the leader only (others
    /// answer `NotLeader`). Errors: `MemberNotFound`, `MemberNotLearner`,
    /// `NotEnoughStartedMembers`, and from the driver `LearnerNotReady`.
    pub async fn member_promote(&self, id: u64) -> Result<pb::MemberPromoteResponse, ServerError> {
        let s = self.shared();
        if s.leader() != Some(s.member_id) {
            return Err(ServerError::NotLeader);
        }
        let _serial = s.reconfig.lock().await;
        check_promote(&self.members_view(), id)?;
        let members = self
            .propose_conf_change(ConfChangeKind::AddVoter, id, Vec::new(), true)
            .await?;
        Ok(pb::MemberPromoteResponse {
            header: Some(self.shared().header(0)),
            members,
        })
    }

    /// MemberUpdate: new peer URLs for member `id`, through the log. Errors:
    /// `MemberBadUrls`, `MemberNotFound`, `PeerUrlExists`.
    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<pb::MemberUpdateResponse, ServerError> {
        let _serial = self.shared().reconfig.lock().await;
        check_update(&self.members_view(), id, &peer_urls)?;
        let request =
            Request::ClusterMemberPeerUrlsSet(raftkvpb::ClusterMemberPeerUrlsSetRequest {
                member_id: id,
                peer_urls,
            });
        match self.propose(request).await? {
            Applied::Members(members) => Ok(pb::MemberUpdateResponse {
                header: Some(self.shared().header(0)),
                members,
            }),
            other => unreachable!("a member update applied as {other:?}"),
        }
    }

    /// Whether this member applied its own removal (it stops itself shortly after).
    pub fn is_removed(&self) -> bool {
        self.shared().removed.load(Ordering::SeqCst)
    }

    fn members_view(&self) -> BTreeMap<u64, pb::Member> {
        let s = self.shared();
        s.members.read().expect("members lock poisoned").clone()
    }

    /// Queues one conf change for the driver and waits until it is applied; returns the
    /// member list after it.
    async fn propose_conf_change(
        &self,
        kind: ConfChangeKind,
        id: u64,
        peer_urls: Vec<String>,
        promote: bool,
    ) -> Result<Vec<pb::Member>, ServerError> {
        let s = self.shared();
        s.check_accepting()?;
        let request_id = s.next_request_id.fetch_add(1, Ordering::SeqCst);
        let context = raftkvpb::MemberContext {
            id,
            is_learner: kind == ConfChangeKind::AddLearner,
            peer_urls,
            request_id,
        };
        let cc = ConfChange {
            kind,
            node: NodeId(id),
            context: Bytes::from(context.encode_to_vec()),
        };
        let (waiter, rx) = oneshot::channel();
        let input = Input::ConfChange {
            id: request_id,
            cc,
            promote,
            waiter,
        };
        super::etcd_server::enqueue(s, input)?;
        let applied = match tokio::time::timeout(s.request_timeout(), rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(ServerError::Stopped),
            Err(_) => return Err(s.timeout_error()),
        };
        match applied {
            Applied::Members(members) => Ok(members),
            other => unreachable!("a conf change applied as {other:?}"),
        }
    }
}

/// The check a logged conf change passes when it is applied, against Raft's configuration
/// at that point (etcd re-validates at apply time too): requests checked against a view
/// that a racing change then altered (a promote and a remove of the same learner, two adds
/// of one id) are refused here and change nothing. Only rules that hold however far
/// behind the starting configuration is are used, because a member replaying entries it
/// already reflects (a joiner that started from the current member list, a restart whose
/// store is ahead of its log) must skip them, not undo later changes: an add of a present
/// id, a promote of a non-learner, a remove of an absent id change nothing.
pub fn conf_change_applies(
    conf: &ConfState,
    cc: &ConfChange,
    promote: bool,
) -> Result<(), ServerError> {
    let voter = conf.voters.contains(&cc.node);
    let learner = conf.learners.contains(&cc.node);
    match cc.kind {
        ConfChangeKind::AddVoter if promote => match (voter, learner) {
            (_, true) => Ok(()),
            (true, false) => Err(ServerError::MemberNotLearner),
            (false, false) => Err(ServerError::MemberNotFound),
        },
        ConfChangeKind::AddVoter | ConfChangeKind::AddLearner if voter || learner => {
            Err(ServerError::MemberIdExists)
        }
        ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => Ok(()),
        ConfChangeKind::RemoveNode if voter || learner => Ok(()),
        ConfChangeKind::RemoveNode => Err(ServerError::MemberNotFound),
    }
}

/// How long a voter must have been connected to the leader before a membership change
/// counts it as healthy (etcd's `HealthInterval`).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// etcd's connectivity half of the strict reconfiguration check, run on the leader with
/// its transport's view (`connected_since`): an add (voter or learner) needs every voter
/// connected for [`HEALTH_INTERVAL`]; removing a voter needs, without it, a quorum of
/// voters so connected (a voter that is down may always be removed: it is not part of the
/// active quorum). Promotions and learner removals are not checked, as in etcd. Example:
/// voters {1 (leader), 2, 3} with 3 down: adding a member is refused (`unhealthy
/// cluster`), removing 3 is allowed, removing 2 is refused (1 of 2 would be left).
pub fn check_connected(
    conf: &ConfState,
    local: NodeId,
    cc: &ConfChange,
    promote: bool,
    connected_since: impl Fn(NodeId) -> Option<Instant>,
    now: Instant,
) -> Result<(), ServerError> {
    let healthy = |id: NodeId| {
        id == local
            || connected_since(id)
                .is_some_and(|t| now.saturating_duration_since(t) >= HEALTH_INTERVAL)
    };
    let ok = match cc.kind {
        _ if promote => true,
        ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => {
            conf.voters.iter().all(|&v| healthy(v))
        }
        ConfChangeKind::RemoveNode => {
            let down = cc.node != local && connected_since(cc.node).is_none();
            if conf.learners.contains(&cc.node) || down {
                true
            } else {
                let active = conf.voters.iter().filter(|&&v| healthy(v)).count();
                active.saturating_sub(1) >= quorum(conf.voters.len().saturating_sub(1))
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ServerError::Unhealthy)
    }
}

/// Whether `url` is a peer URL raftkv can dial: `http://host:port` and nothing after the
/// port, not even `/` (etcd's `types.NewURLs` refuses any path). `https://` is refused
/// too, unlike etcd, because raftkv's peers speak plain HTTP/2.
pub fn valid_peer_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && !rest.contains('/') && port.parse::<u16>().is_ok_and(|p| p != 0)
}

fn check_urls(
    members: &BTreeMap<u64, pb::Member>,
    except: u64,
    peer_urls: &[String],
) -> Result<(), ServerError> {
    if peer_urls.is_empty() || !peer_urls.iter().all(|u| valid_peer_url(u)) {
        return Err(ServerError::MemberBadUrls);
    }
    let taken = members
        .values()
        .filter(|m| m.id != except)
        .flat_map(|m| m.peer_ur_ls.iter())
        .any(|u| peer_urls.contains(u));
    if taken {
        return Err(ServerError::PeerUrlExists);
    }
    Ok(())
}

/// The majority of `voters`.
fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// A member is started once it has published its name.
fn is_started(m: &pb::Member) -> bool {
    !m.name.is_empty()
}

/// (voters, started voters) among `members`, leaving out `except`.
fn count_voters(members: &BTreeMap<u64, pb::Member>, except: Option<u64>) -> (usize, usize) {
    let voters = members
        .values()
        .filter(|m| !m.is_learner && Some(m.id) != except);
    voters.fold((0, 0), |(n, started), m| {
        (n + 1, started + usize::from(is_started(m)))
    })
}

/// MemberAdd's checks (etcd's `ValidateConfigurationChange` and
/// `IsReadyToAddVotingMember`).
pub fn check_add(
    members: &BTreeMap<u64, pb::Member>,
    peer_urls: &[String],
    is_learner: bool,
) -> Result<(), ServerError> {
    check_urls(members, 0, peer_urls)?;
    if is_learner {
        let learners = members.values().filter(|m| m.is_learner).count();
        if learners + 1 > LEARNERS_MAX {
            return Err(ServerError::TooManyLearners);
        }
        return Ok(());
    }
    let (voters, started) = count_voters(members, None);
    let voters_after = voters + 1;
    // etcd's exception: the second member of a one-member cluster (how a cluster is
    // rebuilt from a backup, one member at a time).
    if started == 1 && voters_after == 2 {
        return Ok(());
    }
    if started < quorum(voters_after) {
        return Err(ServerError::NotEnoughStartedMembers);
    }
    Ok(())
}

/// MemberRemove's checks (etcd's `IsReadyToRemoveVotingMember`): a learner may always
/// go; a voter only if the started voters left still make a quorum.
pub fn check_remove(members: &BTreeMap<u64, pb::Member>, id: u64) -> Result<(), ServerError> {
    let m = members.get(&id).ok_or(ServerError::MemberNotFound)?;
    if m.is_learner {
        return Ok(());
    }
    let (voters, started) = count_voters(members, Some(id));
    if started < quorum(voters) {
        return Err(ServerError::NotEnoughStartedMembers);
    }
    Ok(())
}

/// MemberPromote's checks before the leader's progress is consulted (etcd's
/// `IsReadyToPromoteMember`: the learner counts as started and as a voter).
pub fn check_promote(members: &BTreeMap<u64, pb::Member>, id: u64) -> Result<(), ServerError> {
    let m = members.get(&id).ok_or(ServerError::MemberNotFound)?;
    if !m.is_learner {
        return Err(ServerError::MemberNotLearner);
    }
    let (voters, started) = count_voters(members, None);
    if started + 1 < quorum(voters + 1) {
        return Err(ServerError::NotEnoughStartedMembers);
    }
    Ok(())
}

/// MemberUpdate's checks.
pub fn check_update(
    members: &BTreeMap<u64, pb::Member>,
    id: u64,
    peer_urls: &[String],
) -> Result<(), ServerError> {
    if !members.contains_key(&id) {
        // etcd validates the URLs first.
        check_urls(members, id, peer_urls)?;
        return Err(ServerError::MemberNotFound);
    }
    check_urls(members, id, peer_urls)
}

/// Whether a learner with `learner_match` holds enough of the leader's log
/// (`leader_match`) to be promoted.
pub fn learner_in_sync(learner_match: u64, leader_match: u64) -> bool {
    learner_match as f64 >= leader_match as f64 * LEARNER_READY_PERCENT
}

/// An id for a member added at runtime: as etcd, a hash of the sorted peer URLs, the
/// cluster token and the time, so that a member re-added with the same URLs gets a new
/// id; never 0 and never one in use.
fn new_member_id(members: &BTreeMap<u64, pb::Member>, peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut salt = nanos;
    loop {
        let mut h = Sha256::new();
        for u in &urls {
            h.update(u.as_bytes());
        }
        h.update(token.as_bytes());
        h.update(salt.to_be_bytes());
        let digest = h.finalize();
        let id = u64::from_be_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"));
        if id != 0 && !members.contains_key(&id) {
            return id;
        }
        salt = salt.wrapping_add(1);
    }
}

/// Logs etcd's advice when the voters are an even number: one more voter than an odd
/// cluster, and no more failures tolerated.
pub fn warn_if_even_voters(voters: usize) {
    if voters >= 2 && voters.is_multiple_of(2) {
        tracing::warn!(
            voters,
            "cluster has {voters} voting members; an even number gives no more fault \
             tolerance than {}",
            voters - 1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_change_applies_only_to_the_configuration_it_was_checked_against() {
        let conf = ConfState {
            voters: [NodeId(1), NodeId(2)].into_iter().collect(),
            learners: [NodeId(3)].into_iter().collect(),
        };
        let cc = |kind, node| ConfChange {
            kind,
            node: NodeId(node),
            context: Bytes::new(),
        };
        let applies = |kind, node, promote| conf_change_applies(&conf, &cc(kind, node), promote);
        use ConfChangeKind::*;
        assert!(applies(AddVoter, 3, true).is_ok(), "promote of the learner");
        assert!(matches!(
            applies(AddVoter, 2, true),
            Err(ServerError::MemberNotLearner)
        ));
        // A promote that lost a race with the learner's removal: no phantom voter.
        assert!(matches!(
            applies(AddVoter, 9, true),
            Err(ServerError::MemberNotFound)
        ));
        assert!(applies(AddLearner, 9, false).is_ok());
        assert!(applies(AddVoter, 9, false).is_ok());
        for present in [1, 3] {
            assert!(matches!(
                applies(AddLearner, present, false),
                Err(ServerError::MemberIdExists)
            ));
            assert!(applies(RemoveNode, present, false).is_ok());
        }
        assert!(matches!(
            applies(RemoveNode, 9, false),
            Err(ServerError::MemberNotFound)
        ));
    }

    fn member(id: u64, name: &str, url: &str, is_learner: bool) -> (u64, pb::Member) {
        let m = pb::Member {
            id,
            name: name.to_string(),
            peer_ur_ls: vec![url.to_string()],
            client_ur_ls: Vec::new(),
            is_learner,
        };
        (id, m)
    }

    fn urls(u: &str) -> Vec<String> {
        vec![u.to_string()]
    }

    #[test]
    fn peer_urls_must_be_http_host_port() {
        assert!(valid_peer_url("http://127.0.0.1:2380"));
        assert!(valid_peer_url("http://node-1:2380"));
        for bad in [
            "http://node-1:2380/",
            "foo",
            "http://:2380",
            "http://a",
            "https://a:1",
            "http://a:1/x",
            "http://a:0",
        ] {
            assert!(!valid_peer_url(bad), "{bad}");
        }
    }

    #[test]
    fn add_checks_urls_learners_and_started_voters() {
        let one: BTreeMap<_, _> = [member(1, "a", "http://a:1", false)].into();
        assert!(matches!(
            check_add(&one, &urls("http://a:1"), false),
            Err(ServerError::PeerUrlExists)
        ));
        assert!(matches!(
            check_add(&one, &urls("bad"), true),
            Err(ServerError::MemberBadUrls)
        ));
        // One started member may get a second voter (etcd's exception).
        assert!(check_add(&one, &urls("http://b:1"), false).is_ok());
        let mut two = one.clone();
        two.extend([member(2, "", "http://b:1", false)]);
        // 2 voters, 1 started: a third voter makes quorum 2 with 1 started.
        assert!(matches!(
            check_add(&two, &urls("http://c:1"), false),
            Err(ServerError::NotEnoughStartedMembers)
        ));
        let mut with_learner = one.clone();
        with_learner.extend([member(3, "", "http://c:1", true)]);
        assert!(matches!(
            check_add(&with_learner, &urls("http://d:1"), true),
            Err(ServerError::TooManyLearners)
        ));
    }

    #[test]
    fn remove_and_promote_protect_the_started_quorum() {
        let m: BTreeMap<_, _> = [
            member(1, "a", "http://a:1", false),
            member(2, "b", "http://b:1", false),
            member(3, "", "http://c:1", false),
            member(4, "", "http://d:1", true),
        ]
        .into();
        // Removing a started voter leaves {b, c}: quorum 2, 1 started.
        assert!(matches!(
            check_remove(&m, 1),
            Err(ServerError::NotEnoughStartedMembers)
        ));
        assert!(check_remove(&m, 3).is_ok(), "the unstarted voter may go");
        assert!(check_remove(&m, 4).is_ok(), "a learner may always go");
        assert!(matches!(
            check_remove(&m, 9),
            Err(ServerError::MemberNotFound)
        ));
        assert!(matches!(
            check_promote(&m, 1),
            Err(ServerError::MemberNotLearner)
        ));
        assert!(matches!(
            check_promote(&m, 9),
            Err(ServerError::MemberNotFound)
        ));
        // 3 voters (2 started) + the learner: quorum 3, 3 started counting the learner.
        assert!(check_promote(&m, 4).is_ok());
    }

    #[test]
    fn learner_ready_at_ninety_percent_of_the_leader_log() {
        assert!(learner_in_sync(90, 100));
        assert!(!learner_in_sync(89, 100));
        assert!(learner_in_sync(0, 0));
    }

    #[test]
    fn new_ids_avoid_members_in_use() {
        let m: BTreeMap<_, _> = [member(1, "a", "http://a:1", false)].into();
        let a = new_member_id(&m, &urls("http://b:1"), "t");
        assert!(a != 0 && a != 1);
    }
}
