//! Crash test of the sled-backed store with real processes: a child process (this test
//! binary re-run with `MVCC_CRASH_CHILD=<dir>`) applies deterministic batches — batch i at
//! applied index i puts keys derived from i, sometimes deletes one, sometimes compacts —
//! calls `sync_durable()` every few batches and prints the durable applied index it got.
//! It also prints each committed batch. The parent SIGKILLs it after a seeded random number
//! of those lines (the child keeps working meanwhile, so the kill lands anywhere in the
//! apply loop: mid-commit, mid-fsync, mid-compaction), reopens the store and checks:
//! - applied index >= the last durable index the child reported (the WAL-release rule);
//! - the content is exactly the state after batches 1..=applied: every batch all or
//!   nothing, checked against a plain map and against a store replaying the same batches
//!   in memory (same `hash_kv`, same kvs with their revisions);
//! - the store keeps working: the next child continues from applied + 1.
//!
//! The same checks run against `MemBackend`'s crash simulation (crash keeping a random
//! prefix of the unsynced writes), which the cluster simulator relies on.
//!
//! No sleeps: the parent waits on the child's stdout lines with a deadline. `SEED=n`
//! replays a kill schedule; `MVCC_CRASH_KILLS=n` changes the number of kills (default 30).

#[path = "mvcc_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raftkv::mvcc::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{env_u64, open_sled};

const CHILD_ENV: &str = "MVCC_CRASH_CHILD";
/// The child syncs after every this many batches.
const SYNC_EVERY_BATCHES: u64 = 4;
/// A child that has not been killed stops after this many batches.
const CHILD_BATCHES_MAX: u64 = 100_000;

fn key(n: u64) -> Vec<u8> {
    format!("k{:02}", n % 41).into_bytes()
}

/// Batch `i`: four puts, a delete every third batch, a compaction every 25th; the server
/// record `last_batch` = i; committed at applied index i.
fn apply_batch<B: Backend>(store: &mut Store<B>, i: u64) {
    let mut b = store.begin_apply().expect("begin_apply");
    for j in 0..4u64 {
        let req = PutRequest {
            key: key(i * 7 + j * 13),
            value: format!("{i}.{j}").into_bytes(),
            ..Default::default()
        };
        b.put(&req).expect("put");
    }
    if i.is_multiple_of(3) {
        let req = DeleteRangeRequest {
            key: key(i * 5),
            ..Default::default()
        };
        b.delete_range(&req).expect("delete_range");
    }
    if i.is_multiple_of(25) {
        // Refused (deterministically) when it would not move the compaction forward.
        let _ = b.compact(b.current_revision() - 30);
    }
    b.put_app_meta(b"last_batch", i.to_be_bytes().to_vec());
    b.commit(i).expect("commit");
}

/// The key -> value map after batches 1..=applied, written without the store.
fn expected_map(applied: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut map = BTreeMap::new();
    for i in 1..=applied {
        for j in 0..4u64 {
            map.insert(key(i * 7 + j * 13), format!("{i}.{j}").into_bytes());
        }
        if i.is_multiple_of(3) {
            map.remove(&key(i * 5));
        }
    }
    map
}

fn all_kvs<B: Backend>(store: &Store<B>) -> Vec<KeyValue> {
    let req = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    store.range(&req).expect("range all").kvs
}

/// The child: apply batches from the stored applied index on, reporting durable indexes,
/// until killed.
fn child(dir: &Path) {
    let mut store = Store::open(open_sled(dir, &SledConfig::default())).expect("child open");
    let start = store.applied_index() + 1;
    let mut out = std::io::stdout().lock();
    writeln!(out, "start {start}").expect("stdout");
    out.flush().expect("stdout");
    for i in start..start + CHILD_BATCHES_MAX {
        apply_batch(&mut store, i);
        writeln!(out, "applied {i}").expect("stdout");
        out.flush().expect("stdout");
        if i.is_multiple_of(2) {
            store.compact_step().expect("compact_step");
        }
        if i.is_multiple_of(SYNC_EVERY_BATCHES) {
            let durable = store.sync_durable().expect("sync_durable");
            writeln!(out, "durable {durable}").expect("stdout");
            out.flush().expect("stdout");
        }
    }
}

/// Not a test on its own: the body of the child process.
#[test]
fn crash_child() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
}

/// What a child reported before it was killed.
struct Reported {
    /// The last durable applied index (0 if none).
    durable: u64,
    /// The last batch it committed (not necessarily durable).
    applied: u64,
}

/// Run a child until it has printed `lines` progress lines (one per committed batch, one
/// per sync), SIGKILL it — it keeps applying meanwhile, so the kill lands anywhere in the
/// loop — and return what it reported.
fn run_child_and_kill(dir: &Path, lines: usize) -> Reported {
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reported = Reported {
        durable: 0,
        applied: 0,
    };
    let mut seen = 0;
    while seen < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!("child gave {seen} of {lines} progress lines, then {e:?}");
            }
        };
        let number = |n: &str| n.trim().parse::<u64>().expect("an index");
        if let Some(n) = line.strip_prefix("durable ") {
            reported.durable = number(n);
            seen += 1;
        } else if let Some(n) = line.strip_prefix("applied ") {
            reported.applied = number(n);
            seen += 1;
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    drop(rx);
    reader.join().expect("reader thread");
    reported
}

/// Check the store left by a killed child; returns its applied index.
fn check_after_crash(dir: &Path, durable: u64, kill: usize, seed: u64) -> u64 {
    let store = Store::open(open_sled(dir, &SledConfig::default())).expect("reopen after kill");
    let ctx = format!("SEED={seed} kill {kill}");
    check_recovered(&store, durable, &ctx)
}

/// The checks on a store reopened after a crash; returns its applied index.
fn check_recovered<B: Backend>(store: &Store<B>, durable: u64, ctx: &str) -> u64 {
    store.check_invariants();
    let applied = store.applied_index();
    let ctx = format!("{ctx}: applied {applied}, durable {durable}");
    assert!(applied >= durable, "{ctx}: lost durable batches");
    let stored_last = store.app_meta(b"last_batch").expect("app_meta");
    let expected_last = (applied > 0).then(|| applied.to_be_bytes().to_vec());
    assert_eq!(
        stored_last, expected_last,
        "{ctx}: server record of another batch"
    );
    let pairs: BTreeMap<Vec<u8>, Vec<u8>> = all_kvs(store)
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    assert_eq!(
        pairs,
        expected_map(applied),
        "{ctx}: content is not batches 1..=applied"
    );
    let mut replay = Store::open(MemBackend::new()).expect("open mem");
    for i in 1..=applied {
        apply_batch(&mut replay, i);
    }
    assert_eq!(
        all_kvs(store),
        all_kvs(&replay),
        "{ctx}: revisions differ from a replay"
    );
    assert_eq!(
        (store.current_revision(), store.compact_revision()),
        (replay.current_revision(), replay.compact_revision()),
        "{ctx}: (current, compacted)"
    );
    assert_eq!(
        store.hash_kv(0).expect("hash").hash,
        replay.hash_kv(0).expect("hash").hash,
        "{ctx}: hash_kv differs from a replay"
    );
    applied
}

#[test]
fn sigkill_at_random_points_keeps_batches_whole_and_durable_ones() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = env_u64("SEED").unwrap_or(1);
    let kills = env_u64("MVCC_CRASH_KILLS").unwrap_or(30) as usize;
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut last_applied = 0;
    for kill in 0..kills {
        let lines = rng.gen_range(1..=60);
        let reported = run_child_and_kill(dir.path(), lines);
        let applied = check_after_crash(dir.path(), reported.durable, kill, seed);
        assert!(
            applied >= last_applied,
            "SEED={seed} kill {kill}: applied went back"
        );
        eprintln!(
            "kill {kill} after {lines} lines: child said durable {}, committed {}; \
             reopened at applied {applied}",
            reported.durable, reported.applied
        );
        last_applied = applied;
    }
    // The store still takes writes after the last crash.
    let mut store = Store::open(open_sled(dir.path(), &SledConfig::default())).expect("open");
    apply_batch(&mut store, last_applied + 1);
    assert_eq!(store.applied_index(), last_applied + 1);
}

/// The same checks with the in-memory backend's crash simulation (what the cluster
/// simulator relies on): apply a random number of batches with syncs and compaction steps,
/// crash keeping a random prefix of the unsynced writes, reopen, check, continue.
#[test]
fn simulated_crashes_of_mem_backend_keep_batches_whole_and_durable_ones() {
    let seed = env_u64("SEED").unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut backend = MemBackend::with_crash_tracking();
    let (mut durable, mut committed, mut crashes_losing_batches) = (0, 0, 0);
    for crash in 0..env_u64("MVCC_CRASH_KILLS").unwrap_or(30) * 5 {
        let mut store = Store::open(backend.clone()).expect("open");
        let ctx = format!("SEED={seed} simulated crash {crash}");
        let applied = check_recovered(&store, durable, &ctx);
        crashes_losing_batches += u32::from(applied < committed);
        committed = applied + rng.gen_range(0..12);
        for i in applied + 1..=committed {
            apply_batch(&mut store, i);
            if rng.gen_bool(0.3) {
                store.compact_step().expect("compact_step");
            }
            if rng.gen_bool(0.2) {
                durable = store.sync_durable().expect("sync_durable");
            }
        }
        let kept = rng.gen_range(0..=backend.unsynced_batches());
        backend = backend.crash(kept);
    }
    assert!(
        crashes_losing_batches > 0,
        "no crash lost an unsynced batch: test too weak"
    );
}
