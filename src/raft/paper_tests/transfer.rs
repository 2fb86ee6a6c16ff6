//! Leadership transfer (thesis §3.10): catch the target up, TimeoutNow, drop
//! proposals meanwhile, give up after an election timeout.

use super::*;

#[test]
fn leader_transfer_to_up_to_date_follower() {
    let mut net = Net::build(&[1, 2, 3], &[], &pre_vote_and_check_quorum);
    net.elect(1);
    let term = net.node(1).term();
    net.node(1).transfer_leader(NodeId(2));
    net.settle();
    assert_eq!(
        net.node(2).role(),
        Role::Leader,
        "the lease must not block a transfer"
    );
    assert_eq!(net.node(2).term(), term.next(), "transfer skips pre-vote");
    assert_eq!(net.node(1).leader(), Some(NodeId(2)));
}

#[test]
fn leader_transfer_catches_up_lagging_target_first() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"a");
    net.propose(1, b"b");
    net.node(1).transfer_leader(NodeId(3));
    assert!(net.node(1).propose(Bytes::from_static(b"c")).is_err());
    net.heal();
    net.tick_all(1);
    assert_eq!(net.node(3).role(), Role::Leader);
    assert_eq!(
        net.applied_data(3)[..2],
        [Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
}

#[test]
fn proposals_are_dropped_during_transfer() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.node(1).transfer_leader(NodeId(2));
    assert_eq!(
        net.node(1).propose(Bytes::from_static(b"x")),
        Err(Error::ProposalDropped)
    );
}

#[test]
fn transfer_is_aborted_after_an_election_timeout() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.node(1).transfer_leader(NodeId(2));
    for _ in 0..10 {
        net.node(1).tick();
    }
    assert_eq!(net.node(1).role(), Role::Leader);
    assert!(
        net.node(1).propose(Bytes::from_static(b"x")).is_ok(),
        "transfer still blocks"
    );
}

#[test]
fn follower_forwards_transfer_request_to_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.node(3).transfer_leader(NodeId(3));
    net.settle();
    assert_eq!(net.node(3).role(), Role::Leader);
}
