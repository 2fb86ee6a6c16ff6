//! Majority arithmetic over the voter set: the committed index and election results.
//!
//! Pure functions of the voters and what they reported; learners never appear here, which
//! is exactly why they never count toward quorum.
//!
//! Worked example: voters {1, 2, 3, 4, 5} with match indexes 9, 7, 7, 5, 3. Sorted from
//! highest, the 3rd (quorum size) is 7: index 7 is on a majority, so `committed_index`
//! returns 7.

use std::collections::{BTreeMap, BTreeSet};

use super::{Index, NodeId};

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    /// Grants from a majority.
    Won,
    /// Refusals from a majority: the election cannot succeed.
    Lost,
    /// Neither yet.
    Pending,
}

/// How many voters make a majority.
pub(crate) fn quorum_size(voters: &BTreeSet<NodeId>) -> usize {
    voters.len() / 2 + 1
}

/// The highest index that a majority of `voters` has, given each voter's match index.
/// An empty voter set yields `Index(u64::MAX)` so that it never holds commit back (as etcd's
/// joint quorum does); callers only use it with a non-empty set.
pub(crate) fn committed_index(
    voters: &BTreeSet<NodeId>,
    matched: impl Fn(NodeId) -> Index,
) -> Index {
    if voters.is_empty() {
        return Index(u64::MAX);
    }
    let mut indexes: Vec<Index> = voters.iter().map(|&v| matched(v)).collect();
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    indexes[quorum_size(voters) - 1]
}

/// Tallies `votes` (true = granted) cast by members; only voters' votes count.
pub(crate) fn vote_result(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let (mut granted, mut rejected) = (0, 0);
    for v in voters {
        match votes.get(v) {
            Some(true) => granted += 1,
            Some(false) => rejected += 1,
            None => {}
        }
    }
    let quorum = quorum_size(voters);
    if granted >= quorum {
        VoteResult::Won
    } else if rejected >= quorum || voters.len() - rejected < quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Whether the members in `acks` form a majority of `voters`.
pub(crate) fn has_quorum(voters: &BTreeSet<NodeId>, acks: impl Fn(NodeId) -> bool) -> bool {
    voters.iter().filter(|&&v| acks(v)).count() >= quorum_size(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn committed_index_is_the_majority_match() {
        let voters = set(&[1, 2, 3, 4, 5]);
        let matched = [9, 7, 7, 5, 3];
        assert_eq!(
            committed_index(&voters, |id| Index(matched[id.0 as usize - 1])),
            Index(7)
        );
        assert_eq!(committed_index(&set(&[1]), |_| Index(4)), Index(4));
    }

    #[test]
    fn vote_result_counts_only_voters() {
        let voters = set(&[1, 2, 3]);
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        votes.insert(NodeId(9), true);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Pending);
        votes.insert(NodeId(2), true);
        assert_eq!(vote_result(&voters, &votes), VoteResult::Won);
        let mut no = BTreeMap::new();
        no.insert(NodeId(2), false);
        no.insert(NodeId(3), false);
        assert_eq!(vote_result(&voters, &no), VoteResult::Lost);
    }
}
