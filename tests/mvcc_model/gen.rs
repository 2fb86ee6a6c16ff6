//! Seeded generation of the operation sequences that `tests/mvcc_model.rs` runs against the
//! store and the reference model.
//!
//! A sequence is a list of [`Step`]s: apply batches (puts, delete ranges, txns, reads,
//! logical compactions, then one commit) and, between batches, reads at random revisions,
//! physical compaction steps, reopens and defrags. The generator runs the model as it goes,
//! so revisions are picked around the live ones (some compacted, some in the future), and
//! keys come from a small alphabet so requests collide. Nothing here judges results.

use raftkv::mvcc::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::reference::{EventsQuery, Model};

/// One request inside an apply batch.
#[derive(Clone, Debug)]
pub enum Req {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Range(RangeRequest),
    Compact(i64),
}

/// One step of a run.
#[derive(Clone, Debug)]
pub enum Step {
    /// Run the requests in one apply batch, then commit it with the next applied index.
    Batch(Vec<Req>),
    /// A read outside any batch.
    Range(RangeRequest),
    /// Up to this many physical compaction steps.
    CompactSteps(u32),
    /// Drop the store and open it again on the same backend.
    Reopen,
    /// Defragment the backend.
    Defrag,
    /// Read history back as events (watch catch-up).
    Events(EventsQuery),
    /// Export a snapshot of the store and install it over the store itself (the
    /// follower's path): nothing may change.
    InstallOwnSnapshot,
}

/// The shape of a generated run.
pub struct GenConfig {
    /// Steps in the sequence.
    pub steps: usize,
}

struct Gen {
    rng: StdRng,
    model: Model,
    /// Share of batch requests that are compactions, per 10,000.
    compact_per_10k: u32,
}

/// The step sequence of `seed`. Odd seeds compact often (short histories, many refused
/// reads); even seeds rarely, so physical compactions span several steps, interleaved
/// with writes, reopens and newer compactions.
pub fn generate(seed: u64, config: &GenConfig) -> Vec<Step> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        model: Model::new(),
        compact_per_10k: if seed % 2 == 1 { 300 } else { 5 },
    };
    (0..config.steps).map(|_| g.step()).collect()
}

const VALUES: [&[u8]; 5] = [b"", b"x", b"y", b"yy", b"z0"];

impl Gen {
    fn step(&mut self) -> Step {
        let step = match self.rng.gen_range(0..1000) {
            0..=9 => Step::Reopen,
            10..=12 => Step::Defrag,
            13..=15 => Step::InstallOwnSnapshot,
            16..=59 => Step::CompactSteps(self.rng.gen_range(1..=3)),
            60..=89 => Step::Events(self.events_query()),
            90..=329 => Step::Range(self.range()),
            _ => {
                let n = self.rng.gen_range(1..=6);
                Step::Batch((0..n).map(|_| self.req()).collect())
            }
        };
        if let Step::Batch(reqs) = &step {
            // Keep the model in step so later revisions are picked around live ones.
            for r in reqs {
                let _ = match r {
                    Req::Put(p) => self.model.put(p).map(|_| ()),
                    Req::Delete(d) => self.model.delete_range(d).map(|_| ()),
                    Req::Txn(t) => self.model.txn(t).map(|_| ()),
                    Req::Range(_) => Ok(()),
                    Req::Compact(rev) => self.model.compact(*rev),
                };
            }
            let applied = self.model.applied + 1;
            self.model.commit(applied);
        }
        step
    }

    fn req(&mut self) -> Req {
        if self.rng.gen_range(0..10_000) < self.compact_per_10k {
            return Req::Compact(self.revision_near(true));
        }
        match self.rng.gen_range(0..100) {
            0..=40 => Req::Put(self.put()),
            41..=52 => Req::Delete(self.delete()),
            53..=79 => Req::Txn(self.txn(0)),
            _ => Req::Range(self.range()),
        }
    }

    fn key(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..100) {
            0 => vec![],
            1 => vec![0],
            2..=4 => b"abc".to_vec(),
            _ => {
                let len = self.rng.gen_range(1..=2);
                (0..len)
                    .map(|_| b"abcd"[self.rng.gen_range(0..4)])
                    .collect()
            }
        }
    }

    /// A key and a range end: a single key, from-key, a prefix, a random end, or all.
    fn key_range(&mut self, single_pct: u32) -> (Vec<u8>, Vec<u8>) {
        let key = self.key();
        if self.rng.gen_range(0..100) < single_pct {
            return (key, vec![]);
        }
        match self.rng.gen_range(0..10) {
            0..=1 => (key, vec![0]),
            2..=5 => {
                let mut end = key.clone();
                match end.last_mut() {
                    Some(b) if *b < 0xff => *b += 1,
                    _ => end = vec![0],
                }
                (key, end)
            }
            6..=8 => {
                let end = self.key();
                (key, end)
            }
            _ => (vec![0], vec![0]),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        VALUES[self.rng.gen_range(0..VALUES.len())].to_vec()
    }

    fn lease(&mut self) -> i64 {
        match self.rng.gen_range(0..100) {
            0..=59 => 0,
            60..=96 => self.rng.gen_range(1..=3),
            _ => 4,
        }
    }

    /// A revision around the readable ones: mostly in [compacted, current], sometimes
    /// below (compacted) or above (future); `positive` excludes 0 and negatives.
    fn revision_near(&mut self, positive: bool) -> i64 {
        let current = self.model.current();
        let compacted = self.model.compacted;
        if !positive && self.rng.gen_bool(0.5) {
            return if self.rng.gen_bool(0.9) { 0 } else { -1 };
        }
        match self.rng.gen_range(0..20) {
            0 => (compacted - self.rng.gen_range(1..=3)).max(1),
            1 => current + self.rng.gen_range(1..=2),
            2 => compacted.max(1),
            3..=5 => current,
            _ => self.rng.gen_range(compacted.max(1)..=current),
        }
    }

    /// A history query starting above the compacted revision (a start AT it may or may
    /// not see deletes there, depending on physical compaction), sometimes below it or
    /// ending in the future.
    fn events_query(&mut self) -> EventsQuery {
        let (key, range_end) = self.key_range(30);
        let (compacted, current) = (self.model.compacted, self.model.current());
        let from_revision = match self.rng.gen_range(0..20) {
            0 if compacted > 0 => compacted - 1,
            _ => self
                .rng
                .gen_range(compacted + 1..=current.max(compacted + 1)),
        };
        let to_revision = match self.rng.gen_range(0..20) {
            0 => current + 1,
            1 => from_revision - 1,
            _ => self
                .rng
                .gen_range(from_revision..=current.max(from_revision)),
        };
        EventsQuery {
            key,
            range_end,
            from_revision,
            to_revision,
            with_prev_kv: self.rng.gen_bool(0.5),
            events_max: self.rng.gen_range(1..=20),
        }
    }

    fn put(&mut self) -> PutRequest {
        let ignore_value = self.rng.gen_bool(0.12);
        let ignore_lease = self.rng.gen_bool(0.12);
        let wrong = self.rng.gen_bool(0.03);
        PutRequest {
            key: self.key(),
            value: if ignore_value && !wrong {
                vec![]
            } else {
                self.value()
            },
            lease: if ignore_lease && !wrong {
                0
            } else {
                self.lease()
            },
            prev_kv: self.rng.gen_bool(0.5),
            ignore_value,
            ignore_lease,
        }
    }

    fn delete(&mut self) -> DeleteRangeRequest {
        let (key, range_end) = self.key_range(60);
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.rng.gen_bool(0.5),
        }
    }

    fn range(&mut self) -> RangeRequest {
        let (key, range_end) = self.key_range(30);
        let mut req = RangeRequest {
            key,
            range_end,
            revision: self.revision_near(false),
            ..Default::default()
        };
        if self.rng.gen_bool(0.4) {
            req.limit = self.rng.gen_range(1..=5);
        }
        if self.rng.gen_bool(0.4) {
            req.sort_order =
                [SortOrder::None, SortOrder::Ascend, SortOrder::Descend][self.rng.gen_range(0..3)];
            req.sort_target = [
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ][self.rng.gen_range(0..5)];
        }
        req.keys_only = self.rng.gen_bool(0.1);
        req.count_only = self.rng.gen_bool(0.1);
        if self.rng.gen_bool(0.2) {
            let bounds = [
                &mut req.min_mod_revision,
                &mut req.max_mod_revision,
                &mut req.min_create_revision,
                &mut req.max_create_revision,
            ];
            let current = self.model.current();
            for b in bounds {
                if self.rng.gen_bool(0.4) {
                    *b = self.rng.gen_range(1..=current.max(1));
                }
            }
        }
        req
    }

    fn compare(&mut self) -> Compare {
        let (key, range_end) = self.key_range(75);
        let revision = self.revision_near(true);
        let target = match self.rng.gen_range(0..5) {
            0 => CompareTarget::Version(self.rng.gen_range(0..=3)),
            1 => CompareTarget::Create(revision),
            2 => CompareTarget::Mod(revision),
            3 => CompareTarget::Value(self.value()),
            _ => CompareTarget::Lease(self.rng.gen_range(0..=3)),
        };
        let result = [
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ][self.rng.gen_range(0..4)];
        Compare {
            result,
            target,
            key,
            range_end,
        }
    }

    fn txn(&mut self, depth: u32) -> TxnRequest {
        let compares = self.rng.gen_range(0..=3);
        TxnRequest {
            compare: (0..compares).map(|_| self.compare()).collect(),
            success: self.branch(depth),
            failure: self.branch(depth),
        }
    }

    /// The ops of one txn branch; mostly single-key deletes so branches stay valid often.
    fn branch(&mut self, depth: u32) -> Vec<RequestOp> {
        let n = self.rng.gen_range(0..=4);
        (0..n)
            .map(|_| match self.rng.gen_range(0..100) {
                0..=39 => RequestOp::Put(self.put()),
                40..=54 => {
                    let mut d = self.delete();
                    if self.rng.gen_bool(0.5) {
                        d.range_end.clear();
                    }
                    RequestOp::DeleteRange(d)
                }
                55..=84 => RequestOp::Range(self.range()),
                _ if depth < 2 => RequestOp::Txn(self.txn(depth + 1)),
                _ => RequestOp::Range(self.range()),
            })
            .collect()
    }
}
