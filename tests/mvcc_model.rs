//! Model test of the MVCC store: seeded random sequences of puts, delete ranges, txns
//! (nested, with compares on every target), reads at random revisions with every Range
//! option, logical and physical compactions, reopens, defrags and snapshot installs, run
//! on the real store (MemBackend and SledBackend) and on the naive model in
//! `mvcc_model/reference.rs`, which keeps every revision's whole state. Every response
//! (kvs, count, more, header revision, prev_kvs, deleted, succeeded, errors), every batch's
//! events, history read back with `events_in` (watch catch-up), the revision counters and
//! the leased keys must agree; reopening, physical compaction, defrag and installing the
//! store's own snapshot must not change `hash_kv`; both backends must end with the same
//! `hash_kv` at every revision checked.
//!
//! On a mismatch the test prints the seed, the failing step and the shortest failing prefix
//! (the steps up to the first mismatch, then shrunk by dropping chunks while it still
//! fails). `SEED=n` replays one seed (both backends, full length); `MVCC_SEEDS=n` runs n
//! seeds instead of the CI default; `MVCC_STEPS=n` changes the sequence length.

#[path = "mvcc_model/gen.rs"]
mod gen;
#[path = "mvcc_model/reference.rs"]
mod reference;
#[path = "mvcc_support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use gen::{generate, GenConfig, Req, Step};
use raftkv::mvcc::*;
use reference::{err_name, lease_exists, Model, Refusal};
use support::{env_u64, open_sled};

/// Which backend a run uses.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Mem,
    Sled,
}

/// The first mismatch of a run: the step it happened at and what differed.
#[derive(Debug)]
struct Failure {
    step: usize,
    message: String,
}

thread_local! {
    /// How often each kind of outcome was seen on this test's thread: the test asserts
    /// that every interesting case happened, so a generator change cannot hollow it out.
    static SEEN: RefCell<BTreeMap<String, u64>> = RefCell::default();
}

fn seen(label: String) {
    SEEN.with(|s| *s.borrow_mut().entry(label).or_default() += 1);
}

/// Compare a store answer with the model's: equal values, or an error the model allows.
fn agree<T: std::fmt::Debug + PartialEq>(
    what: &str,
    store: Result<T>,
    model: std::result::Result<T, Refusal>,
) -> std::result::Result<(), String> {
    let kind = what.split([' ', '(']).next().unwrap_or(what);
    match (store, model) {
        (Ok(s), Ok(m)) if s == m => {
            let detail = format!("{s:?}");
            let flags = [
                "succeeded: true",
                "succeeded: false",
                "more: true",
                "prev_kv: Some",
            ];
            for flag in flags.iter().filter(|f| detail.contains(*f)) {
                seen(format!("{kind} {flag}"));
            }
            seen(format!("{kind} ok"));
            Ok(())
        }
        (Err(e), Err(allowed)) if allowed.contains(&err_name(&e)) => {
            seen(format!("{kind} refused {}", err_name(&e)));
            Ok(())
        }
        (s, m) => Err(format!("{what}:\n store: {s:?}\n model: {m:?}")),
    }
}

/// Run one apply batch on both sides.
fn run_batch<B: Backend>(
    store: &mut Store<B>,
    model: &mut Model,
    reqs: &[Req],
) -> std::result::Result<(), String> {
    let exists = |id: i64| lease_exists(id);
    let mut b = store
        .begin_apply_with_leases(Some(&exists))
        .map_err(|e| format!("begin_apply: {e}"))?;
    for (i, r) in reqs.iter().enumerate() {
        let what = format!("{r:?} (request {i} of the batch)");
        match r {
            Req::Put(p) => agree(&what, b.put(p), model.put(p))?,
            Req::Delete(d) => agree(&what, b.delete_range(d), model.delete_range(d))?,
            Req::Txn(t) => agree(&what, b.txn(t), model.txn(t))?,
            Req::Range(q) => agree(&what, b.range(q), model.range(q))?,
            Req::Compact(rev) => agree(&what, b.compact(*rev), model.compact(*rev))?,
        }
    }
    let applied = model.applied + 1;
    let events = model.commit(applied);
    let out = b.commit(applied).map_err(|e| format!("commit: {e}"))?;
    if out.events != events {
        return Err(format!(
            "events:\n store: {:?}\n model: {events:?}",
            out.events
        ));
    }
    if (out.current_revision, out.applied_index) != (model.current(), applied) {
        return Err(format!(
            "commit outcome {out:?} vs model {}",
            model.current()
        ));
    }
    Ok(())
}

/// The store's counters and leased keys against the model.
fn check_counters<B: Backend>(store: &Store<B>, model: &Model) -> std::result::Result<(), String> {
    let s = (
        store.current_revision(),
        store.compact_revision(),
        store.applied_index(),
    );
    let m = (model.current(), model.compacted, model.applied);
    if s != m {
        return Err(format!(
            "(current, compacted, applied): store {s:?} model {m:?}"
        ));
    }
    Ok(())
}

fn check_leased<B: Backend>(store: &Store<B>, model: &Model) -> std::result::Result<(), String> {
    let leased = store
        .leased_keys()
        .map_err(|e| format!("leased_keys: {e}"))?;
    if leased != model.leased_keys() {
        return Err(format!(
            "leased keys: store {leased:?} model {:?}",
            model.leased_keys()
        ));
    }
    Ok(())
}

fn hash_now<B: Backend>(store: &Store<B>) -> std::result::Result<KvHash, String> {
    store.hash_kv(0).map_err(|e| format!("hash_kv: {e}"))
}

/// Execute one step on both sides.
fn run_step<B: Backend>(
    store: &mut Option<Store<B>>,
    open: &mut dyn FnMut() -> B,
    model: &mut Model,
    step: &Step,
) -> std::result::Result<(), String> {
    let s = store.as_mut().expect("store open");
    match step {
        Step::Batch(reqs) => run_batch(s, model, reqs)?,
        Step::Range(q) => agree("Read", s.range(q), model.range(q))?,
        Step::Events(q) => {
            let (k, e, from, to) = (&q.key, &q.range_end, q.from_revision, q.to_revision);
            let store = s.events_in(k, e, from, to, q.with_prev_kv, q.events_max);
            agree("Events", store, model.events_in(q))?
        }
        Step::CompactSteps(n) => {
            let before = hash_now(s)?;
            for _ in 0..*n {
                let progress = s.compact_step().map_err(|e| format!("compact_step: {e}"))?;
                let name = format!("{progress:?}");
                seen(format!(
                    "compact_step {}",
                    name.split([' ', '{']).next().unwrap()
                ));
            }
            if hash_now(s)? != before {
                return Err("physical compaction changed hash_kv".into());
            }
        }
        Step::Reopen => {
            let before = hash_now(s)?;
            drop(store.take());
            let reopened = Store::open(open()).map_err(|e| format!("reopen: {e}"))?;
            let after = hash_now(&reopened)?;
            *store = Some(reopened);
            if after != before {
                return Err(format!("reopen changed hash_kv: {before:?} -> {after:?}"));
            }
            check_leased(store.as_ref().unwrap(), model)?;
        }
        Step::InstallOwnSnapshot => {
            let before = hash_now(s)?;
            let mut image = Vec::new();
            let mut reader = s.snapshot().map_err(|e| format!("snapshot: {e}"))?;
            std::io::Read::read_to_end(&mut reader, &mut image).map_err(|e| e.to_string())?;
            drop(reader);
            s.install_snapshot(&image[..])
                .map_err(|e| format!("install: {e}"))?;
            if hash_now(s)? != before {
                return Err("installing the store's own snapshot changed hash_kv".into());
            }
            check_leased(s, model)?;
        }
        Step::Defrag => {
            let before = hash_now(s)?;
            s.defrag().map_err(|e| format!("defrag: {e}"))?;
            if hash_now(s)? != before {
                return Err("defrag changed hash_kv".into());
            }
        }
    }
    let s = store.as_ref().unwrap();
    check_counters(s, model)?;
    if matches!(step, Step::Batch(_)) {
        s.check_invariants();
    }
    Ok(())
}

/// Hashes at a spread of revisions from the compacted one (exclusive) to the current one.
fn sample_hashes<B: Backend>(store: &Store<B>) -> Vec<(i64, u32)> {
    let (lo, hi) = (store.compact_revision() + 1, store.current_revision());
    let stride = ((hi - lo) / 16).max(1) as usize;
    (lo..=hi)
        .step_by(stride)
        .chain([0])
        .map(|r| {
            (
                r,
                store.hash_kv(r).expect("hash_kv at a kept revision").hash,
            )
        })
        .collect()
}

/// Run `steps` on a fresh backend of `kind`; the final sampled hashes on success.
fn run(kind: Kind, steps: &[Step]) -> std::result::Result<Vec<(i64, u32)>, Failure> {
    match kind {
        Kind::Mem => {
            let mem = MemBackend::new();
            run_on(steps, &mut || mem.clone())
        }
        Kind::Sled => {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = SledConfig {
                cache_capacity_bytes: 4 << 20,
            };
            run_on(steps, &mut || open_sled(dir.path(), &config))
        }
    }
}

fn run_on<B: Backend>(
    steps: &[Step],
    open: &mut dyn FnMut() -> B,
) -> std::result::Result<Vec<(i64, u32)>, Failure> {
    let mut at = 0;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut store = Some(Store::open(open()).map_err(|e| e.to_string())?);
        let mut model = Model::new();
        for (i, step) in steps.iter().enumerate() {
            at = i;
            run_step(&mut store, open, &mut model, step)?;
        }
        Ok(sample_hashes(store.as_ref().unwrap()))
    }));
    let message = match outcome {
        Ok(Ok(hashes)) => return Ok(hashes),
        Ok(Err(message)) => message,
        Err(panic) => match panic.downcast_ref::<String>() {
            Some(s) => format!("panic: {s}"),
            None => format!("panic: {:?}", panic.downcast_ref::<&str>()),
        },
    };
    Err(Failure { step: at, message })
}

/// Shrink a failing sequence: cut it after its first failing step (the shortest failing
/// prefix: every shorter one passed in the same run), then drop chunks of steps (halving
/// the chunk size) and single requests of batches while it still fails, within a time
/// budget.
fn shrink(kind: Kind, steps: &[Step], first: Failure) -> (Vec<Step>, Failure) {
    let mut best = steps[..=first.step].to_vec();
    let mut failure = first;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut chunk = best.len() / 2;
    while chunk >= 1 && Instant::now() < deadline {
        let mut i = 0;
        while i < best.len() && Instant::now() < deadline {
            let mut candidate = best.clone();
            candidate.drain(i..(i + chunk).min(best.len()));
            match run(kind, &candidate) {
                Err(f) => {
                    best = candidate[..=f.step].to_vec();
                    failure = f;
                }
                Ok(_) => i += chunk,
            }
        }
        chunk /= 2;
    }
    // Then single requests inside the remaining batches.
    for i in (0..best.len()).rev() {
        let len = match &best.get(i) {
            Some(Step::Batch(reqs)) => reqs.len(),
            _ => continue,
        };
        for j in (0..len).rev() {
            if Instant::now() >= deadline {
                return (best, failure);
            }
            let mut candidate = best.clone();
            let Some(Step::Batch(reqs)) = candidate.get_mut(i) else {
                break;
            };
            if j >= reqs.len() {
                continue;
            }
            reqs.remove(j);
            if let Err(f) = run(kind, &candidate) {
                best = candidate[..=f.step].to_vec();
                failure = f;
            }
        }
    }
    (best, failure)
}

/// Run one seed on both backends and compare their final hashes; panics with the seed,
/// the shrunk failing sequence and the mismatch.
fn check_seed(seed: u64, steps: usize, kinds: &[Kind]) {
    let sequence = generate(seed, &GenConfig { steps });
    let mut hashes = Vec::new();
    for &kind in kinds {
        match run(kind, &sequence) {
            Ok(h) => hashes.push(h),
            Err(f) => {
                eprintln!("seed {seed} on {kind:?}: step {}: {}", f.step, f.message);
                let (prefix, f) = shrink(kind, &sequence, f);
                eprintln!("shortest failing sequence found ({} steps):", prefix.len());
                for (i, s) in prefix.iter().enumerate() {
                    eprintln!("  {i}: {s:?}");
                }
                panic!(
                    "model mismatch: SEED={seed} on {kind:?}, step {}: {}",
                    f.step, f.message
                );
            }
        }
    }
    if let [first, rest @ ..] = hashes.as_slice() {
        for other in rest {
            assert_eq!(first, other, "SEED={seed}: backends disagree on hash_kv");
        }
    }
}

/// Print what the test exercised and assert that every interesting case happened.
fn assert_coverage(required: &[&str]) {
    let seen = SEEN.with(|s| s.borrow().clone());
    eprintln!("outcomes seen: {seen:#?}");
    for label in required {
        assert!(
            seen.get(*label).copied().unwrap_or(0) > 0,
            "never saw {label:?}"
        );
    }
}

const REQUIRED: [&str; 20] = [
    "Put ok",
    "Put prev_kv: Some",
    "Put refused KeyNotFound",
    "Put refused LeaseNotFound",
    "Delete ok",
    "Txn succeeded: true",
    "Txn succeeded: false",
    "Txn refused DuplicateKey",
    "Txn refused FutureRevision",
    "Range more: true",
    "Read more: true",
    "Read refused Compacted",
    "Read refused FutureRevision",
    "Compact ok",
    "Compact refused Compacted",
    "Compact refused FutureRevision",
    "Events ok",
    "Events refused Compacted",
    "compact_step Running",
    "compact_step Finished",
];

#[test]
fn store_matches_model_on_mem_and_sled() {
    let steps = env_u64("MVCC_STEPS").unwrap_or(3000) as usize;
    let seeds: Vec<u64> = match env_u64("SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_u64("MVCC_SEEDS").unwrap_or(8)).collect(),
    };
    for seed in seeds {
        check_seed(seed, steps, &[Kind::Mem, Kind::Sled]);
    }
    assert_coverage(&REQUIRED);
}

/// Many short sequences on the in-memory backend: breadth over fresh-store corner cases.
#[test]
fn store_matches_model_short_sequences() {
    if env_u64("SEED").is_some() {
        return;
    }
    let seeds = env_u64("MVCC_SEEDS").unwrap_or(8) * 10;
    for seed in 1000..1000 + seeds {
        check_seed(seed, 150, &[Kind::Mem]);
    }
}
