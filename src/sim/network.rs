//! The simulated network: messages in flight between nodes, with seeded faults.
//!
//! Every message sent gets a delivery time (now plus a random delay), may be dropped or
//! duplicated, and waits in flight until the cluster picks it. Picking among deliverable
//! messages at random reorders them; links can be cut one way ([`Network::block`]) or both
//! ways, and a cut link loses messages at send and at delivery time, as a real partition
//! would. The network never looks inside a message beyond its endpoints. Called by
//! `sim::cluster`.
//!
//! Worked example (delay up to 2 ticks, reorder on):
//! ```text
//! t=0 send 1->2 A (delay 2), 1->3 B (delay 0)
//! t=0 pop   -> B           (A not yet due)
//! t=2 pop   -> A
//! block 1->2; send 1->2 C  -> C is lost at once
//! ```

use std::collections::{BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::Rng;

use crate::raft::{Message, MessageKind, NodeId};

/// Fault rates of the network. Probabilities are in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Chance that a message is lost.
    pub drop: f64,
    /// Chance that a message (other than a forwarded proposal) is delivered twice.
    pub duplicate: f64,
    /// Each message is delayed by a uniform number of ticks in `0..=delay_ticks_max`.
    pub delay_ticks_max: u64,
    /// Deliver due messages in random order rather than in send order.
    pub reorder: bool,
}

/// A message on its way.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The message.
    pub msg: Message,
    /// The tick at which it may be delivered.
    pub deliver_at_ticks: u64,
}

/// Counters for the run report.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetworkStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered to a node.
    pub delivered: u64,
    /// Messages lost to drops, partitions or dead receivers.
    pub lost: u64,
    /// Extra copies created.
    pub duplicated: u64,
}

/// All messages in flight plus the state of every link.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// The current fault rates.
    pub faults: Faults,
    /// Counters.
    pub stats: NetworkStats,
    /// In send order.
    in_flight: VecDeque<InFlight>,
    /// Cut links as (from, to): messages from `from` to `to` are lost.
    blocked: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    /// Sends `msg` at tick `now`. Returns false when it was lost at once.
    pub fn send(&mut self, msg: Message, now_ticks: u64, rng: &mut StdRng) -> bool {
        self.stats.sent += 1;
        if self.is_blocked(msg.from, msg.to) || chance(rng, self.faults.drop) {
            self.stats.lost += 1;
            return false;
        }
        // Forwarded proposals are never duplicated: a real server dedups them by request id,
        // and the checker holds every payload to one log index.
        if msg.kind != MessageKind::Propose && chance(rng, self.faults.duplicate) {
            self.stats.duplicated += 1;
            self.enqueue(msg.clone(), now_ticks, rng);
        }
        self.enqueue(msg, now_ticks, rng);
        true
    }

    fn enqueue(&mut self, msg: Message, now_ticks: u64, rng: &mut StdRng) {
        let delay = if self.faults.delay_ticks_max == 0 {
            0
        } else {
            rng.gen_range(0..=self.faults.delay_ticks_max)
        };
        self.in_flight.push_back(InFlight {
            msg,
            deliver_at_ticks: now_ticks + delay,
        });
    }

    /// Takes one message that is due at `now` and whose receiver `can_receive`: the oldest,
    /// or a random one when reordering. The caller delivers it, or drops it when
    /// [`Network::is_blocked`] or the receiver is down.
    pub fn pop(
        &mut self,
        now_ticks: u64,
        rng: &mut StdRng,
        can_receive: impl Fn(NodeId) -> bool,
    ) -> Option<Message> {
        let due = |m: &InFlight| m.deliver_at_ticks <= now_ticks && can_receive(m.msg.to);
        let pos = if self.faults.reorder {
            let count = self.in_flight.iter().filter(|m| due(m)).count();
            if count == 0 {
                return None;
            }
            let nth = rng.gen_range(0..count);
            self.in_flight
                .iter()
                .enumerate()
                .filter(|(_, m)| due(m))
                .nth(nth)
                .map(|(i, _)| i)
        } else {
            // The queue is in send order, so the first due message is the oldest.
            self.in_flight.iter().position(due)
        }?;
        self.in_flight.remove(pos).map(|m| m.msg)
    }

    /// How many messages are in flight (due or not).
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.block(x, y);
                self.block(y, x);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Whether the link from `from` to `to` is cut.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Notes a message lost at delivery time (partition or dead receiver).
    pub fn note_lost(&mut self) {
        self.stats.lost += 1;
    }

    /// Notes a delivered message.
    pub fn note_delivered(&mut self) {
        self.stats.delivered += 1;
    }
}

fn chance(rng: &mut StdRng, p: f64) -> bool {
    p > 0.0 && rng.gen_bool(p.min(1.0))
}
