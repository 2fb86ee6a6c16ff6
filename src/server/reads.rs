//! Linearizable reads: batching waiting readers into ReadIndex rounds and releasing them
//! once the member has applied up to the round's read index.
//!
//! Readers that arrive while a round is being issued share it: every driver iteration
//! issues at most one new round carrying all readers queued since the last one. A round
//! the leader never answers (lost message, leader change) is re-issued after an election
//! timeout; readers that gave up (their receiver dropped) are forgotten. Owned by the
//! driver thread; no locks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::ServerError;
use crate::raft::ReadState;

/// A reader waiting for its read index to be applied.
pub type ReadWaiter = oneshot::Sender<Result<(), ServerError>>;

/// Readers by stage: queued, in a round, confirmed at a read index.
#[derive(Default)]
pub struct ReadQueue {
    queued: Vec<ReadWaiter>,
    rounds: HashMap<u64, (Instant, Vec<ReadWaiter>)>,
    confirmed: Vec<(u64, Vec<ReadWaiter>)>,
    next_round: u64,
}

impl ReadQueue {
    /// Queue a reader for the next round.
    pub fn push(&mut self, waiter: ReadWaiter) {
        self.queued.push(waiter);
    }

    /// The context of a new round holding every queued reader, if any is queued. The
    /// caller passes it to `RawNode::read_index` (only when a leader is known).
    pub fn start_round(&mut self, now: Instant) -> Option<Bytes> {
        self.queued.retain(|w| !w.is_closed());
        if self.queued.is_empty() {
            return None;
        }
        self.next_round += 1;
        let waiters = std::mem::take(&mut self.queued);
        self.rounds.insert(self.next_round, (now, waiters));
        Some(Bytes::copy_from_slice(&self.next_round.to_be_bytes()))
    }

    /// Rounds older than `retry_after` go back to the queue to be issued again.
    pub fn requeue_stale(&mut self, now: Instant, retry_after: Duration) {
        let stale: Vec<u64> = self
            .rounds
            .iter()
            .filter(|(_, (started, _))| now.duration_since(*started) >= retry_after)
            .map(|(&round, _)| round)
            .collect();
        for round in stale {
            let (_, waiters) = self.rounds.remove(&round).expect("listed above");
            self.queued
                .extend(waiters.into_iter().filter(|w| !w.is_closed()));
        }
    }

    /// The leader confirmed a round: its readers wait for `rs.index` to be applied.
    pub fn confirm(&mut self, rs: &ReadState) {
        let Ok(raw) = <[u8; 8]>::try_from(rs.context.as_ref()) else {
            return;
        };
        if let Some((_, waiters)) = self.rounds.remove(&u64::from_be_bytes(raw)) {
            self.confirmed.push((rs.index.0, waiters));
        }
    }

    /// Release every confirmed reader whose read index is at or below `applied`.
    pub fn release(&mut self, applied: u64) {
        self.confirmed.retain_mut(|(index, waiters)| {
            if *index > applied {
                return true;
            }
            for w in waiters.drain(..) {
                let _ = w.send(Ok(()));
            }
            false
        });
    }

    /// Whether anything waits.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.rounds.is_empty() && self.confirmed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Index;

    #[test]
    fn readers_queued_together_share_one_round_and_wait_for_apply() {
        let mut q = ReadQueue::default();
        let (a, mut ra) = oneshot::channel();
        let (b, mut rb) = oneshot::channel();
        q.push(a);
        q.push(b);
        let now = Instant::now();
        let ctx = q.start_round(now).expect("two readers queued");
        assert!(
            q.start_round(now).is_none(),
            "both readers are in the first round"
        );
        q.confirm(&ReadState {
            index: Index(7),
            context: ctx,
        });
        q.release(6);
        assert!(ra.try_recv().is_err(), "not applied up to 7 yet");
        q.release(7);
        assert!(ra.try_recv().unwrap().is_ok());
        assert!(rb.try_recv().unwrap().is_ok());
        assert!(q.is_idle());
    }

    #[test]
    fn unanswered_round_is_issued_again() {
        let mut q = ReadQueue::default();
        let (a, _ra) = oneshot::channel();
        q.push(a);
        let t0 = Instant::now();
        let first = q.start_round(t0).unwrap();
        q.requeue_stale(t0 + Duration::from_secs(2), Duration::from_secs(1));
        let second = q.start_round(t0).unwrap();
        assert_ne!(first, second);
    }
}
