//! `hash_kv` as the witness of "same MVCC state": a store reopened, exported and imported
//! into a fresh backend of either kind, installed over another store, or defragmented must
//! give the same `hash_kv` — and the same data — at every revision it keeps, from the
//! compacted one up to the current one, whether or not the physical compaction has finished.
//! A truncated, corrupted or over-long snapshot stream must be refused, leave a target that
//! cannot be opened, and leave an installing store unchanged.
//!
//! Phases of the main test (one line of log each): build a seeded history with a logical
//! compaction whose physical deletion is only half done; reopen; export + import into Mem
//! and Sled; finish the compaction; export again + import; defrag; install over another
//! store; keep writing the same requests on the source and a copy. `SEED=n` replays one
//! seed; `MVCC_SEEDS=n` runs n seeds.

#[path = "mvcc_support/mod.rs"]
mod support;

use std::io::Read;

use raftkv::mvcc::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{env_u64, open_sled};

/// What must not change: `hash_kv` and every key (with values) at every kept revision,
/// plus the counters.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    current: i64,
    compacted: i64,
    applied: u64,
    /// (revision, hash, all kvs at that revision); revision 0 = current.
    revisions: Vec<(i64, u32, Vec<KeyValue>)>,
    app_meta: Vec<(Vec<u8>, Vec<u8>)>,
}

fn fingerprint<B: Backend>(store: &Store<B>) -> Fingerprint {
    let all_at = |revision| RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision,
        ..Default::default()
    };
    let kept = (store.compact_revision() + 1..=store.current_revision()).chain([0]);
    let revisions = kept
        .map(|r| {
            let hash = store.hash_kv(r).expect("hash_kv at a kept revision");
            let kvs = store
                .range(&all_at(r))
                .expect("range at a kept revision")
                .kvs;
            (r, hash.hash, kvs)
        })
        .collect();
    Fingerprint {
        current: store.current_revision(),
        compacted: store.compact_revision(),
        applied: store.applied_index(),
        revisions,
        app_meta: store.app_meta_scan(b"").expect("app_meta_scan"),
    }
}

fn key(rng: &mut StdRng) -> Vec<u8> {
    format!("k{:02}", rng.gen_range(0..30)).into_bytes()
}

/// One random write request, committed as its own batch with the next applied index.
fn write_one<B: Backend>(store: &mut Store<B>, rng: &mut StdRng) {
    let applied = store.applied_index() + 1;
    let mut b = store.begin_apply().expect("begin_apply");
    match rng.gen_range(0..10) {
        0..=5 => {
            let value = vec![b'v'; rng.gen_range(0..40)];
            let req = PutRequest {
                key: key(rng),
                value,
                lease: rng.gen_range(0..3),
                ..Default::default()
            };
            b.put(&req).expect("put");
        }
        6..=7 => {
            let (k, e) = (key(rng), key(rng));
            let range_end = if rng.gen_bool(0.5) { vec![] } else { e };
            let req = DeleteRangeRequest {
                key: k,
                range_end,
                prev_kv: false,
            };
            b.delete_range(&req).expect("delete_range");
        }
        8 => {
            let k = key(rng);
            let put = PutRequest {
                key: k.clone(),
                value: b"txn".to_vec(),
                ..Default::default()
            };
            let compare = Compare {
                result: CompareResult::Less,
                target: CompareTarget::Version(3),
                key: k,
                range_end: vec![],
            };
            let req = TxnRequest {
                compare: vec![compare],
                success: vec![RequestOp::Put(put)],
                failure: vec![],
            };
            b.txn(&req).expect("txn");
        }
        _ => {
            let name = format!("lease/{}", rng.gen_range(0..5)).into_bytes();
            b.put_app_meta(&name, vec![rng.gen()]);
        }
    }
    b.commit(applied).expect("commit");
}

fn compact<B: Backend>(store: &mut Store<B>, revision: i64) {
    let applied = store.applied_index() + 1;
    let mut b = store.begin_apply().expect("begin_apply");
    b.compact(revision).expect("compact");
    b.commit(applied).expect("commit");
}

/// A history of `revisions` revisions with a compaction at 60-80% of it, then 200 more
/// writes; the physical compaction is left after its first step (of several).
fn build<B: Backend>(store: &mut Store<B>, rng: &mut StdRng, revisions: i64) {
    while store.current_revision() < revisions {
        write_one(store, rng);
    }
    let current = store.current_revision();
    compact(store, rng.gen_range(current * 6 / 10..=current * 8 / 10));
    for _ in 0..200 {
        write_one(store, rng);
    }
    let first = store.compact_step().expect("compact_step");
    assert!(
        matches!(first, CompactionProgress::Running { .. }),
        "history too small for a multi-step compaction: {first:?}"
    );
}

/// Export the whole store; the stream must be exactly `total_bytes` long.
fn export<B: Backend>(store: &Store<B>) -> Vec<u8> {
    let mut reader = store.snapshot().expect("snapshot");
    let total = reader.total_bytes();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).expect("read snapshot");
    assert_eq!(
        bytes.len() as u64,
        total,
        "total_bytes announced the wrong length"
    );
    bytes
}

fn check_imports(bytes: &[u8], expected: &Fingerprint, phase: &str) {
    let mem = import_snapshot(bytes, MemBackend::new()).expect("import into mem");
    assert_eq!(&fingerprint(&mem), expected, "{phase}: imported into Mem");
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = import_snapshot(bytes, open_sled(dir.path(), &SledConfig::default()))
        .expect("import into sled");
    assert_eq!(&fingerprint(&sled), expected, "{phase}: imported into Sled");
    drop(sled);
    let reopened = Store::open(open_sled(dir.path(), &SledConfig::default())).expect("reopen");
    assert_eq!(
        &fingerprint(&reopened),
        expected,
        "{phase}: import reopened"
    );
}

/// Every phase on one source store; `reopen` drops the store and opens its backend again.
fn hash_phases<B: Backend>(
    seed: u64,
    mut store: Store<B>,
    reopen: &mut dyn FnMut(Store<B>) -> Store<B>,
) {
    eprintln!("seed {seed}: start (replay with SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    build(&mut store, &mut rng, 1800);
    let before = fingerprint(&store);
    eprintln!(
        "seed {seed}: built revisions {}..={}, physical compaction pending",
        before.compacted, before.current
    );
    let store = reopen(store);
    assert_eq!(fingerprint(&store), before, "SEED={seed}: reopen");
    eprintln!("seed {seed}: reopen keeps hash and data");

    let bytes = export(&store);
    check_imports(&bytes, &before, &format!("SEED={seed} pending compaction"));
    eprintln!(
        "seed {seed}: export/import mid-compaction keeps hash ({} bytes)",
        bytes.len()
    );

    let mut store = store;
    let done = store.compact_physical_all().expect("compact_physical_all");
    assert!(
        matches!(done, CompactionProgress::Finished { .. }),
        "{done:?}"
    );
    assert_eq!(
        fingerprint(&store),
        before,
        "SEED={seed}: physical compaction"
    );
    let compacted_bytes = export(&store);
    assert!(
        compacted_bytes.len() < bytes.len(),
        "compaction deleted nothing"
    );
    check_imports(
        &compacted_bytes,
        &before,
        &format!("SEED={seed} after compaction"),
    );
    eprintln!("seed {seed}: after physical compaction, export/import keeps hash");

    let report = store.defrag().expect("defrag");
    assert_eq!(fingerprint(&store), before, "SEED={seed}: defrag");
    let store = reopen(store);
    assert_eq!(
        fingerprint(&store),
        before,
        "SEED={seed}: defrag then reopen"
    );
    eprintln!("seed {seed}: defrag keeps hash and data: {report:?}");

    let mut other = Store::open(MemBackend::new()).expect("open");
    build(&mut other, &mut StdRng::seed_from_u64(seed + 1), 1800);
    other
        .install_snapshot(&compacted_bytes[..])
        .expect("install");
    assert_eq!(fingerprint(&other), before, "SEED={seed}: install_snapshot");
    eprintln!("seed {seed}: install_snapshot over another store keeps hash");

    let mut store = store;
    let (mut a, mut b) = (
        StdRng::seed_from_u64(seed + 2),
        StdRng::seed_from_u64(seed + 2),
    );
    for _ in 0..300 {
        write_one(&mut store, &mut a);
        write_one(&mut other, &mut b);
    }
    assert_eq!(
        fingerprint(&store),
        fingerprint(&other),
        "SEED={seed}: diverged after install"
    );
    eprintln!("seed {seed}: source and installed copy agree after 300 more writes");
}

fn seeds() -> Vec<u64> {
    match env_u64("SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_u64("MVCC_SEEDS").unwrap_or(2)).collect(),
    }
}

#[test]
fn hash_is_kept_by_reopen_snapshot_restore_and_defrag_on_mem() {
    for seed in seeds() {
        let mem = MemBackend::new();
        let store = Store::open(mem.clone()).expect("open");
        hash_phases(seed, store, &mut |s| {
            drop(s);
            Store::open(mem.clone()).expect("reopen")
        });
    }
}

#[test]
fn hash_is_kept_by_reopen_snapshot_restore_and_defrag_on_sled() {
    for seed in seeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SledConfig::default();
        let store = Store::open(open_sled(dir.path(), &config)).expect("open");
        hash_phases(seed, store, &mut |s| {
            drop(s);
            Store::open(open_sled(dir.path(), &config)).expect("reopen")
        });
    }
}

/// Import must fail with InvalidSnapshot, and the target must refuse to open.
fn assert_refused<B: Backend>(bytes: &[u8], target: B, reopen: impl FnOnce() -> B, what: &str) {
    match import_snapshot(bytes, target) {
        Err(MvccError::InvalidSnapshot(_)) => {}
        Err(e) => panic!("{what}: refused with the wrong error: {e}"),
        Ok(_) => panic!("{what}: a bad snapshot was accepted"),
    }
    assert!(
        Store::open(reopen()).is_err(),
        "{what}: a failed import can be opened"
    );
}

#[test]
fn corrupt_truncated_or_extended_snapshots_are_refused() {
    let seed = env_u64("SEED").unwrap_or(7);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = Store::open(MemBackend::new()).expect("open");
    for _ in 0..120 {
        write_one(&mut store, &mut rng);
    }
    let good = export(&store);
    let expected = fingerprint(&store);
    let mut cuts: Vec<usize> = (0..good.len()).step_by(7).collect();
    cuts.extend(good.len().saturating_sub(40)..good.len());
    for cut in cuts {
        let what = format!("SEED={seed}: cut at {cut} of {}", good.len());
        let mem = MemBackend::new();
        assert_refused(&good[..cut], mem.clone(), || mem, &what);
    }
    for _ in 0..300 {
        let mut bad = good.clone();
        let at = rng.gen_range(0..bad.len());
        bad[at] ^= 1 << rng.gen_range(0..8);
        let what = format!("SEED={seed}: bit flipped at {at}");
        let mem = MemBackend::new();
        assert_refused(&bad, mem.clone(), || mem, &what);
    }
    let mut longer = good.clone();
    longer.push(0);
    let mem = MemBackend::new();
    assert_refused(&longer, mem.clone(), || mem, "one byte too many");
    for cut in [0, 12, good.len() / 2, good.len() - 1] {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = open_sled(dir.path(), &SledConfig::default());
        let reopen = || open_sled(dir.path(), &SledConfig::default());
        let what = format!("SEED={seed}: sled, cut at {cut}");
        assert_refused(&good[..cut], target, reopen, &what);
    }
    // A follower installing a bad stream keeps its state and keeps working.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut follower = import_snapshot(&good[..], open_sled(dir.path(), &SledConfig::default()))
        .expect("good import");
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x10;
    assert!(
        follower.install_snapshot(&bad[..]).is_err(),
        "bad install accepted"
    );
    assert!(follower.install_snapshot(&good[..good.len() - 1]).is_err());
    assert_eq!(
        fingerprint(&follower),
        expected,
        "SEED={seed}: failed install changed state"
    );
    write_one(&mut follower, &mut rng);
    drop(follower);
    let reopened = Store::open(open_sled(dir.path(), &SledConfig::default())).expect("reopen");
    assert_eq!(
        reopened.applied_index(),
        expected.applied + 1,
        "write after failed install"
    );
}

/// A hash started at revision R (the store-locked half) and finished after more writes, a
/// new compaction above R and attempts to run its physical deletion must equal the hash of
/// R taken before any of that: the scan reads the state as of its start, and physical
/// compaction waits for it (which is what lets the server drop the store lock while a
/// large store is hashed).
#[test]
fn a_started_hash_is_unmoved_by_later_writes_and_compaction() {
    for seed in seeds() {
        eprintln!("seed {seed}: hash started, then writes and a compaction");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut store = Store::open(MemBackend::new()).expect("open");
        build(&mut store, &mut rng, 2_000);
        let at = store.current_revision();
        let before = store.hash_kv(at).expect("hash_kv").hash;
        let hasher = store.hash_kv_start(at).expect("hash_kv_start");
        for _ in 0..100 {
            write_one(&mut store, &mut rng);
        }
        compact(&mut store, at);
        assert_eq!(
            store.compact_step().expect("compact_step"),
            CompactionProgress::Paused,
            "seed {seed}: physical compaction ran under a live hasher"
        );
        let after = hasher.finish().expect("finish");
        assert_eq!(after.hash, before, "seed {seed}: the started hash moved");
        assert_eq!(after.hash_revision, at);
        assert!(
            store.compact_step().expect("compact_step") != CompactionProgress::Paused,
            "seed {seed}: compaction still paused after the hash finished"
        );
    }
}

/// A defrag copied in passes while writes and a compaction go on between them (the server
/// copies without the store lock) ends in the same state as a twin store that got the same
/// writes and was never defragmented: nothing written during the copy is lost.
fn defrag_in_passes<B: Backend>(seed: u64, mut store: Store<B>, mut twin: Store<B>) {
    eprintln!("seed {seed}: defrag in passes with writes between them");
    let (mut rng, mut twin_rng) = (StdRng::seed_from_u64(seed), StdRng::seed_from_u64(seed));
    build(&mut store, &mut rng, 1800);
    build(&mut twin, &mut twin_rng, 1800);
    let mut copy = store.defrag_begin().expect("defrag_begin");
    copy.copy_up_to(store.current_revision())
        .expect("bulk pass");
    for _ in 0..150 {
        write_one(&mut store, &mut rng);
        write_one(&mut twin, &mut twin_rng);
    }
    let at = store.current_revision() - 20;
    compact(&mut store, at);
    compact(&mut twin, at);
    copy.copy_up_to(store.current_revision())
        .expect("catch-up pass");
    for _ in 0..50 {
        write_one(&mut store, &mut rng);
        write_one(&mut twin, &mut twin_rng);
    }
    store.defrag_finish(copy).expect("defrag_finish");
    assert_eq!(
        fingerprint(&store),
        fingerprint(&twin),
        "seed {seed}: the defragmented store differs from its twin"
    );
}

#[test]
fn defrag_in_passes_keeps_writes_made_during_the_copy() {
    for seed in seeds() {
        let open = || Store::open(MemBackend::new()).expect("open");
        defrag_in_passes(seed, open(), open());
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let config = SledConfig::default();
        let open_sled_store =
            |dir: &std::path::Path| Store::open(open_sled(dir, &config)).expect("open sled");
        defrag_in_passes(seed, open_sled_store(a.path()), open_sled_store(b.path()));
    }
}

/// A Raft snapshot installed while a defrag was copying replaces the backend the copy came
/// from: finishing then copies the new backend instead, and the store holds the installed
/// state.
#[test]
fn defrag_finish_after_an_install_copies_the_installed_state() {
    for seed in seeds() {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let config = SledConfig::default();
        let mut store = Store::open(open_sled(dir.path(), &config)).expect("open");
        build(&mut store, &mut rng, 1800);
        let mut other = Store::open(MemBackend::new()).expect("open");
        build(&mut other, &mut StdRng::seed_from_u64(seed + 7), 2500);
        let expected = fingerprint(&other);
        let mut copy = store.defrag_begin().expect("defrag_begin");
        copy.copy_up_to(store.current_revision())
            .expect("bulk pass");
        store
            .install_snapshot(&export(&other)[..])
            .expect("install_snapshot");
        store.defrag_finish(copy).expect("defrag_finish");
        assert_eq!(fingerprint(&store), expected, "seed {seed}");
        drop(store);
        let reopened = Store::open(open_sled(dir.path(), &config)).expect("reopen");
        assert_eq!(
            fingerprint(&reopened),
            expected,
            "seed {seed}: after reopen"
        );
    }
}

/// A defrag whose old backend a hash still reads cannot delete it at the switch; the store
/// keeps it retired and `reap_retired` deletes it once the hash is done (before, its
/// directory stayed on disk until the next open).
#[test]
fn a_backend_still_read_at_a_defrag_is_reaped_once_free() {
    let dir = tempfile::tempdir().unwrap();
    let generations = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("db.")
            })
            .count()
    };
    let mut store = Store::open(open_sled(dir.path(), &SledConfig::default())).expect("open");
    build(&mut store, &mut StdRng::seed_from_u64(1), 1800);
    let hasher = store.hash_kv_start(0).expect("hash_kv_start");
    store.defrag().expect("defrag");
    assert_eq!(generations(), 2, "the old backend is still read");
    assert_eq!(store.reap_retired().expect("reap"), 1, "reaped while held");
    let hash = hasher.finish().expect("finish");
    assert_eq!(store.reap_retired().expect("reap"), 0);
    assert_eq!(generations(), 1, "the old backend's directory is gone");
    assert_eq!(store.hash_kv(0).expect("hash_kv").hash, hash.hash);
}
