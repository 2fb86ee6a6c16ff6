//! Randomized crash test: whatever the moment of a crash, recovery returns a state the log
//! actually went through, and never one older than the last `sync`.
//!
//! A seeded run appends random batches (some replacing a conflicting suffix), sets hard
//! states, saves snapshot markers, releases segments and syncs at random points, against a
//! `MemDisk`. At random points the disk crashes, either losing every unsynced byte or keeping
//! a random (partly zeroed) piece of them, and the WAL is reopened. A model log replays the
//! same operations record by record; recovery must equal one of the model's states since the
//! last sync (a crash may keep more than was synced, never less, never garbage), and after a
//! clean crash with no segment cut since the sync, exactly the synced state.
//!
//! Replay a failure with `SEED=n cargo test --test wal_crash`; `WAL_CRASH_SEEDS=n` runs more.

use bytes::Bytes;
use raftkv::raft::{ConfState, Entry, EntryKind, HardState, Index, NodeId, SnapshotMetadata, Term};
use raftkv::wal::{MemDisk, Recovered, Wal, WalOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIR: &str = "/wal";

/// The log as the writer's caller believes it to be, by the replay rules of the WAL docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    hard_state: HardState,
    snapshot: SnapshotMetadata,
    /// Contiguous from `snapshot.index + 1`.
    entries: Vec<Entry>,
}

impl Model {
    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot.index.0, |e| e.index.0)
    }

    fn term_at(&self, index: u64) -> Option<Term> {
        let first = self.snapshot.index.0 + 1;
        let offset = index.checked_sub(first)?;
        self.entries.get(offset as usize).map(|e| e.term)
    }

    fn append(&mut self, entry: &Entry) {
        let keep = (entry.index.0 - self.snapshot.index.0 - 1) as usize;
        self.entries.truncate(keep);
        self.entries.push(entry.clone());
    }

    fn save_snapshot(&mut self, meta: &SnapshotMetadata) {
        if self.term_at(meta.index.0) == Some(meta.term) {
            let drop = (meta.index.0 - self.snapshot.index.0) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot = meta.clone();
    }

    fn from_recovered(recovered: Recovered) -> Model {
        let Recovered {
            hard_state,
            snapshot,
            entries,
        } = recovered;
        Model {
            hard_state,
            snapshot,
            entries,
        }
    }
}

/// Prints the seed if the test panics while it is alive.
struct SeedReporter(u64);

impl Drop for SeedReporter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "wal_crash failed with seed {}; replay with SEED={}",
                self.0, self.0
            );
        }
    }
}

/// One seeded run.
struct Run {
    rng: StdRng,
    disk: MemDisk,
    options: WalOptions,
    wal: Wal<MemDisk>,
    model: Model,
    /// Model states since the last sync, oldest first: what a crash may recover.
    history: Vec<Model>,
    /// `disk.sync_count()` right after our last sync (or open).
    syncs_at_last_sync: u64,
    term: u64,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut rng = StdRng::seed_from_u64(seed);
        let options = WalOptions {
            segment_bytes_max: rng.gen_range(200..3000),
            buffer_bytes_max: rng.gen_range(1..600),
        };
        let disk = MemDisk::new();
        let (wal, recovered) = Wal::open(disk.clone(), DIR, options.clone()).unwrap();
        let model = Model::from_recovered(recovered);
        let syncs_at_last_sync = disk.sync_count();
        let history = vec![model.clone()];
        Run {
            rng,
            disk,
            options,
            wal,
            model,
            history,
            syncs_at_last_sync,
            term: 1,
        }
    }

    fn step(&mut self) {
        match self.rng.gen_range(0..100) {
            0..=44 => self.append_batch(),
            45..=54 => self.set_hard_state(),
            55..=59 => self.save_snapshot(),
            60..=64 => self.release(),
            65..=89 => self.sync(),
            _ => self.crash_and_recover(),
        }
        self.wal.check_invariants();
        assert_eq!(
            self.wal.last_index().0,
            self.model.last_index(),
            "writer's last index"
        );
        assert_eq!(self.wal.first_index(), self.model.snapshot.index.next());
    }

    fn append_batch(&mut self) {
        let last = self.model.last_index();
        let first_allowed = self.model.snapshot.index.0 + 1;
        let start = if last >= first_allowed && self.rng.gen_bool(0.2) {
            self.term += 1; // a new leader overwrites an uncommitted suffix
            self.rng.gen_range(first_allowed..=last)
        } else {
            last + 1
        };
        let count = self.rng.gen_range(1..=8);
        let batch: Vec<Entry> = (start..start + count)
            .map(|index| self.entry(index))
            .collect();
        self.wal.append(&batch).unwrap();
        for entry in &batch {
            self.model.append(entry);
            self.history.push(self.model.clone());
        }
    }

    fn entry(&mut self, index: u64) -> Entry {
        let len = self.rng.gen_range(0..120);
        let data: Vec<u8> = (0..len).map(|_| self.rng.gen()).collect();
        let kind = if self.rng.gen_bool(0.1) {
            EntryKind::ConfChange
        } else {
            EntryKind::Normal
        };
        Entry {
            term: Term(self.term),
            index: Index(index),
            kind,
            data: Bytes::from(data),
        }
    }

    fn set_hard_state(&mut self) {
        let vote = Some(NodeId(self.rng.gen_range(0..4))).filter(|n| n.0 != 0);
        let commit = Index(self.rng.gen_range(0..=self.model.last_index()));
        let hard_state = HardState {
            term: Term(self.term),
            vote,
            commit,
        };
        self.wal.set_hard_state(&hard_state).unwrap();
        self.model.hard_state = hard_state;
        self.history.push(self.model.clone());
    }

    fn save_snapshot(&mut self) {
        let last = self.model.last_index();
        let from = self.model.snapshot.index.0;
        let meta = if last > from && self.rng.gen_bool(0.8) {
            // Local compaction at an entry we have.
            let index = self.rng.gen_range(from + 1..=last);
            SnapshotMetadata {
                index: Index(index),
                term: self.model.term_at(index).unwrap(),
                conf_state: conf_state(index),
            }
        } else {
            // A snapshot installed from a leader, beyond (or unrelated to) our log.
            self.term += 1;
            let index = last + self.rng.gen_range(0..5);
            SnapshotMetadata {
                index: Index(index),
                term: Term(self.term),
                conf_state: conf_state(index),
            }
        };
        self.wal.save_snapshot(&meta).unwrap();
        self.model.save_snapshot(&meta);
        self.history.push(self.model.clone());
    }

    fn release(&mut self) {
        let index = self.rng.gen_range(0..=self.model.last_index() + 2);
        self.wal.release_to(Index(index)).unwrap();
    }

    fn sync(&mut self) {
        self.wal.sync().unwrap();
        self.syncs_at_last_sync = self.disk.sync_count();
        self.history = vec![self.model.clone()];
    }

    fn crash_and_recover(&mut self) {
        let torn = self.rng.gen_bool(0.5);
        let clean_since_sync = self.disk.sync_count() == self.syncs_at_last_sync;
        if torn {
            self.disk.crash_torn(&mut self.rng);
        } else {
            self.disk.crash();
        }
        let (wal, recovered) = Wal::open(self.disk.clone(), DIR, self.options.clone())
            .unwrap_or_else(|error| panic!("reopen after crash (torn: {torn}) failed: {error}"));
        let recovered = Model::from_recovered(recovered);
        let position = self.history.iter().position(|state| *state == recovered);
        assert!(
            position.is_some(),
            "recovered a state the log never had since the last sync (torn: {torn}):\n\
             recovered {recovered:?}\nsynced {:?}",
            self.history[0]
        );
        if !torn && clean_since_sync {
            assert_eq!(
                position,
                Some(0),
                "a clean crash must recover exactly the synced state"
            );
        }
        self.wal = wal;
        self.model = recovered;
        self.sync();
    }
}

fn conf_state(index: u64) -> ConfState {
    let mut conf_state = ConfState::default();
    conf_state
        .voters
        .extend([NodeId(1), NodeId(2), NodeId(1 + index % 5)]);
    conf_state
}

fn run(seed: u64, steps: usize) {
    let _reporter = SeedReporter(seed);
    let mut run = Run::new(seed);
    for _ in 0..steps {
        run.step();
    }
    // A last clean crash after a sync must give back exactly the model.
    run.sync();
    run.crash_and_recover();
    assert_eq!(run.history, vec![run.model.clone()]);
}

#[test]
fn recovery_after_random_crashes_is_a_state_since_the_last_sync() {
    if let Ok(seed) = std::env::var("SEED") {
        run(seed.parse().expect("SEED must be a number"), 400);
        return;
    }
    let seeds: u64 = std::env::var("WAL_CRASH_SEEDS").map_or(200, |n| n.parse().unwrap());
    for seed in 0..seeds {
        run(seed, 400);
    }
}
