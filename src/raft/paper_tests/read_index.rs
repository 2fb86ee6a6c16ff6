//! ReadIndex (thesis §6.4): reads wait for a commit in the leader's term, are
//! confirmed by a heartbeat quorum, share rounds, and are never served by a deposed leader.

use super::*;

#[test]
fn read_index_waits_for_commit_in_current_term() {
    let mut leader = new_node(1, &[1, 2, 3], &[], &|_| {});
    leader.campaign();
    leader
        .step(msg(MessageKind::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    drain(&mut leader);
    leader.read_index(Bytes::from_static(b"r"));
    let sent = drain(&mut leader);
    assert!(
        sent.iter().all(|m| m.context.is_empty()),
        "no read round before the no-op of this term commits"
    );
    assert_eq!(leader.status().pending_read_count, 1);
    let mut ack = msg(MessageKind::AppendResponse, 2, 1, 1);
    ack.index = Index(1);
    leader.step(ack).unwrap();
    let sent = drain(&mut leader);
    let round: Vec<&Message> = sent
        .iter()
        .filter(|m| m.kind == MessageKind::Heartbeat && !m.context.is_empty())
        .collect();
    assert_eq!(
        round.len(),
        2,
        "the commit releases the read into a heartbeat round"
    );
    let mut hb_ack = msg(MessageKind::HeartbeatResponse, 2, 1, 1);
    hb_ack.context = round[0].context.clone();
    leader.step(hb_ack).unwrap();
    let rd = leader.ready();
    assert_eq!(
        rd.read_states,
        vec![ReadState {
            index: Index(1),
            context: Bytes::from_static(b"r")
        }]
    );
}

#[test]
fn read_index_needs_heartbeat_quorum() {
    let mut net = Net::new(&[1, 2, 3, 4, 5]);
    net.elect(1);
    net.isolate(3);
    net.isolate(4);
    net.isolate(5);
    net.node(1).read_index(Bytes::from_static(b"r"));
    net.settle();
    assert!(
        net.read_states[&NodeId(1)].is_empty(),
        "2 of 5 acks cannot confirm leadership"
    );
    net.cut.retain(|&(a, b)| a != NodeId(3) && b != NodeId(3));
    net.node(1).tick();
    net.settle();
    net.node(1).read_index(Bytes::from_static(b"s"));
    net.settle();
    let got: Vec<Bytes> = net.read_states[&NodeId(1)]
        .iter()
        .map(|r| r.context.clone())
        .collect();
    assert_eq!(
        got,
        vec![Bytes::from_static(b"r"), Bytes::from_static(b"s")]
    );
}

#[test]
fn reads_arriving_together_share_one_heartbeat_round() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.delivered.clear();
    for ctx in [&b"a"[..], b"b", b"c"] {
        net.node(1).read_index(Bytes::from_static(ctx));
    }
    net.settle();
    let heartbeats = net
        .delivered
        .iter()
        .filter(|m| m.kind == MessageKind::Heartbeat)
        .count();
    assert_eq!(heartbeats, 2, "one round: one heartbeat per follower");
    let states = &net.read_states[&NodeId(1)];
    assert_eq!(states.len(), 3);
    assert!(states.iter().all(|r| r.index == Index(1)));
}

#[test]
fn single_voter_read_index_answers_immediately() {
    let mut n = new_node(1, &[1], &[2], &|_| {});
    n.campaign();
    drain(&mut n);
    n.read_index(Bytes::from_static(b"r"));
    let rd = n.ready();
    assert_eq!(rd.read_states.len(), 1);
    assert!(
        rd.messages.is_empty(),
        "no heartbeat round with a single voter"
    );
}

#[test]
fn follower_read_index_is_forwarded_and_answered_by_leader() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.propose(1, b"a");
    net.node(3).read_index(Bytes::from_static(b"f"));
    net.settle();
    let states = &net.read_states[&NodeId(3)];
    assert_eq!(
        states,
        &vec![ReadState {
            index: Index(2),
            context: Bytes::from_static(b"f")
        }]
    );
}

#[test]
fn deposed_leader_cannot_serve_reads() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.elect(2);
    net.node(1).read_index(Bytes::from_static(b"stale"));
    net.settle();
    net.tick_all(5);
    assert!(
        net.read_states[&NodeId(1)].is_empty(),
        "old leader confirmed a stale read"
    );
}

#[test]
fn read_index_without_known_leader_is_dropped() {
    let mut n = new_node(1, &[1, 2, 3], &[], &|_| {});
    n.read_index(Bytes::from_static(b"r"));
    assert!(!n.has_ready(), "nothing to send, nothing to answer");
}
