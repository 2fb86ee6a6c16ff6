//! Store-level unit tests of durability: compaction (logical, physical, resumed after a
//! crash), hash_kv, reopen on sled, crash with unsynced batches, snapshots,
//! defragmentation, and a seeded randomized run against a naive model.

use super::store_tests::{del_req, keys, put_all, put_req, range_req};
use super::*;

#[test]
fn compaction_logical_physical_and_hash() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    // a: 2, 3; b: 4, deleted at 5; c: 6
    put_all(&mut s, &[("a", "1"), ("a", "2"), ("b", "1")], 1);
    let mut b = s.begin_apply().unwrap();
    b.delete_range(&del_req("b", "")).unwrap();
    b.put(&put_req("c", "1")).unwrap();
    b.commit(2).unwrap();
    let before = s.hash_kv(6).unwrap();
    let mut b = s.begin_apply().unwrap();
    assert!(matches!(b.compact(7), Err(MvccError::FutureRevision)));
    b.compact(5).unwrap();
    assert!(matches!(b.compact(5), Err(MvccError::Compacted)));
    b.commit(3).unwrap();
    assert!(matches!(
        s.range(&RangeRequest {
            revision: 4,
            ..range_req("a", "")
        }),
        Err(MvccError::Compacted)
    ));
    let at5 = s
        .range(&RangeRequest {
            revision: 5,
            ..range_req("\0", "\0")
        })
        .unwrap();
    assert_eq!(keys(&at5), vec!["a"], "revision == compacted is readable");
    let logical = s.hash_kv(6).unwrap();
    assert!(matches!(s.hash_kv(5), Err(MvccError::Compacted)));
    assert_eq!(
        s.compact_physical_all().unwrap(),
        CompactionProgress::Finished { revision: 5 }
    );
    let physical = s.hash_kv(6).unwrap();
    assert_eq!(
        logical, physical,
        "hash does not depend on physical progress"
    );
    assert_ne!(before.hash, logical.hash);
    assert_eq!((physical.compact_revision, physical.hash_revision), (5, 6));
    let left = s.backend().scan(Bucket::Key, b"", None, 100).unwrap();
    let revs: Vec<i64> = left
        .iter()
        .map(|(k, _)| revision::decode_key_bytes(k).unwrap().revision.main)
        .collect();
    assert_eq!(revs, vec![3, 6], "a@3 kept, a@2 and b's whole life gone");
    s.check_invariants();
}

#[test]
fn crash_mid_compaction_resumes_on_open() {
    let backend = MemBackend::new();
    let mut s = Store::open(backend.clone()).unwrap();
    let n = COMPACTION_BATCH_KEYS * 2 + 10;
    let mut b = s.begin_apply().unwrap();
    for i in 0..n {
        b.put(&put_req(&format!("k{}", i % 50), &i.to_string()))
            .unwrap();
    }
    b.commit(1).unwrap();
    let rev = s.current_revision() - 5;
    let mut b = s.begin_apply().unwrap();
    b.compact(rev).unwrap();
    b.commit(2).unwrap();
    let expected = s.hash_kv(0).unwrap();
    assert!(matches!(
        s.compact_step().unwrap(),
        CompactionProgress::Running { .. }
    ));
    drop(s); // crash after one step
    let mut s = Store::open(backend.clone()).unwrap();
    assert_eq!((s.compact_revision(), s.applied_index()), (rev, 2));
    assert!(s.compaction_pending());
    assert_eq!(s.hash_kv(0).unwrap(), expected);
    assert_eq!(
        s.compact_physical_all().unwrap(),
        CompactionProgress::Finished { revision: rev }
    );
    let left = s.backend().scan(Bucket::Key, b"", None, 10_000).unwrap();
    assert_eq!(
        left.len(),
        50 + 5,
        "one kept version per key plus the 5 newer writes"
    );
    let s = Store::open(backend).unwrap();
    assert!(!s.compaction_pending());
    assert_eq!(s.hash_kv(0).unwrap(), expected);
}

#[test]
fn reopen_restores_revisions_index_and_app_meta_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let open = || SledBackend::open(dir.path(), SledConfig::default()).unwrap();
    let mut s = Store::open(open()).unwrap();
    put_all(&mut s, &[("a", "1"), ("b", "1"), ("a", "2")], 10);
    let mut b = s.begin_apply().unwrap();
    b.delete_range(&del_req("b", "")).unwrap();
    b.compact(3).unwrap();
    b.put_app_meta(b"lease/1", b"ttl".to_vec());
    b.commit(11).unwrap();
    assert_eq!(s.sync_durable().unwrap(), 11);
    let hash = s.hash_kv(0).unwrap();
    drop(s);
    let s = Store::open(open()).unwrap();
    assert_eq!(
        (
            s.current_revision(),
            s.compact_revision(),
            s.applied_index()
        ),
        (5, 3, 11)
    );
    assert_eq!(s.hash_kv(0).unwrap(), hash);
    assert_eq!(s.app_meta(b"lease/1").unwrap(), Some(b"ttl".to_vec()));
    assert_eq!(s.app_meta_scan(b"lease/").unwrap().len(), 1);
    let a = &s.range(&range_req("a", "")).unwrap().kvs[0];
    assert_eq!((a.version, a.mod_revision, a.create_revision), (2, 4, 2));
    assert!(s.db_size().unwrap().db_size_bytes > 0);
    s.check_invariants();
}

#[test]
fn crash_loses_only_unsynced_batches_atomically() {
    let backend = MemBackend::with_crash_tracking();
    let mut s = Store::open(backend.clone()).unwrap();
    put_all(&mut s, &[("a", "1")], 1);
    assert_eq!(s.sync_durable().unwrap(), 1);
    put_all(&mut s, &[("b", "1"), ("c", "1")], 2);
    put_all(&mut s, &[("d", "1")], 3);
    for kept in 0..=2 {
        let s = Store::open(backend.crash(kept)).unwrap();
        let expect = [(1, 2), (2, 4), (3, 5)][kept];
        assert_eq!(
            (s.applied_index(), s.current_revision()),
            expect,
            "kept {kept}"
        );
    }
}

#[test]
fn snapshot_round_trip_and_corruption() {
    let mut s = Store::open(MemBackend::new()).unwrap();
    put_all(&mut s, &[("a", "1"), ("b", "2"), ("a", "3")], 4);
    let mut b = s.begin_apply().unwrap();
    b.compact(3).unwrap();
    b.put_app_meta(b"member/1", b"m".to_vec());
    b.commit(5).unwrap();
    let mut image = Vec::new();
    let mut reader = s.snapshot().unwrap();
    let total = reader.total_bytes();
    std::io::Read::read_to_end(&mut reader, &mut image).unwrap();
    drop(reader);
    assert_eq!(image.len() as u64, total, "total_bytes is exact");
    put_all(&mut s, &[("later", "x")], 6); // not in the image
    let restored = import_snapshot(image.as_slice(), MemBackend::new()).unwrap();
    assert_eq!(
        (restored.applied_index(), restored.current_revision()),
        (5, 4)
    );
    assert_eq!(restored.hash_kv(4).unwrap(), s.hash_kv(4).unwrap());
    assert_eq!(restored.app_meta(b"member/1").unwrap(), Some(b"m".to_vec()));
    for cut in [0, 5, 12, image.len() / 2, image.len() - 1] {
        let r = import_snapshot(&image[..cut], MemBackend::new());
        assert!(
            matches!(r, Err(MvccError::InvalidSnapshot(_))),
            "cut at {cut}"
        );
    }
    let mut bad = image.clone();
    bad[20] ^= 1;
    let target = MemBackend::new();
    assert!(matches!(
        import_snapshot(bad.as_slice(), target.clone()),
        Err(MvccError::InvalidSnapshot(_))
    ));
    assert!(
        Store::open(target).is_err(),
        "a failed import cannot be opened"
    );
}

#[test]
fn defrag_on_sled_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(SledBackend::open(dir.path(), SledConfig::default()).unwrap()).unwrap();
    let big = "x".repeat(1000);
    let kvs: Vec<(String, &str)> = (0..300)
        .map(|i| (format!("k{}", i % 10), big.as_str()))
        .collect();
    let refs: Vec<(&str, &str)> = kvs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    put_all(&mut s, &refs, 1);
    let mut b = s.begin_apply().unwrap();
    b.compact(s_current(&b)).unwrap();
    b.commit(2).unwrap();
    s.compact_physical_all().unwrap();
    let hash = s.hash_kv(0).unwrap();
    let report = s.defrag().unwrap();
    assert!(report.size_after_bytes > 0 && report.size_before_bytes > 0);
    assert_eq!(s.hash_kv(0).unwrap(), hash);
    drop(s);
    let s = Store::open(SledBackend::open(dir.path(), SledConfig::default()).unwrap()).unwrap();
    assert_eq!(s.hash_kv(0).unwrap(), hash);
    assert_eq!(s.range(&range_req("\0", "\0")).unwrap().count, 10);
}

fn s_current<B: Backend>(b: &ApplyBatch<'_, '_, B>) -> i64 {
    b.current_revision()
}

/// The value of every key at every revision, replayed naively: (key, revision) -> value.
#[derive(Default)]
struct Model {
    /// key -> [(main revision, Some(value) | None = deleted)]
    history: std::collections::BTreeMap<String, Vec<(i64, Option<String>)>>,
    current: i64,
}

impl Model {
    fn at(&self, at: i64) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, h) in &self.history {
            if let Some((_, Some(v))) = h.iter().rev().find(|(r, _)| *r <= at) {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }
}

/// Random puts, deletes, compactions and reopens against [`Model`]: every read at every
/// revision still readable matches it, and hash_kv survives reopen. `SEED=n` replays one.
#[test]
fn randomized_against_naive_model() {
    use rand::{Rng, SeedableRng};
    let seeds: Vec<u64> = match std::env::var("SEED") {
        Ok(s) => vec![s.parse().expect("SEED must be a number")],
        Err(_) => (0..20).collect(),
    };
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run_model(seed));
        if result.is_err() {
            panic!("model test failed; replay with SEED={seed}");
        }
    }

    fn run_model(seed: u64) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let backend = MemBackend::new();
        let mut s = Store::open(backend.clone()).unwrap();
        let mut m = Model {
            current: 1,
            ..Default::default()
        };
        for step in 0..300u64 {
            let key = format!("k{}", rng.gen_range(0..8));
            let mut b = s.begin_apply().unwrap();
            match rng.gen_range(0..10) {
                0..=5 => {
                    let value = format!("v{step}");
                    b.put(&put_req(&key, &value)).unwrap();
                    m.current += 1;
                    m.history
                        .entry(key)
                        .or_default()
                        .push((m.current, Some(value)));
                }
                6 | 7 => {
                    let end = format!("k{}", rng.gen_range(0..9));
                    let r = b.delete_range(&del_req(&key, &end)).unwrap();
                    let live: Vec<String> = m
                        .at(m.current)
                        .into_iter()
                        .map(|(k, _)| k)
                        .filter(|k| *k >= key && *k < end)
                        .collect();
                    assert_eq!(r.deleted as usize, live.len());
                    if !live.is_empty() {
                        m.current += 1;
                        for k in live {
                            m.history.get_mut(&k).unwrap().push((m.current, None));
                        }
                    }
                }
                8 => {
                    let at = rng.gen_range(1..=m.current);
                    let _ = b.compact(at);
                }
                _ => {}
            }
            b.commit(step + 1).unwrap();
            if rng.gen_range(0..20) == 0 {
                s.compact_step().unwrap();
            }
            if rng.gen_range(0..30) == 0 {
                let hash = s.hash_kv(0).unwrap();
                s = Store::open(backend.clone()).unwrap();
                assert_eq!(s.hash_kv(0).unwrap(), hash, "hash across reopen");
                let mut image = Vec::new();
                let mut reader = s.snapshot().unwrap();
                let total = reader.total_bytes();
                std::io::Read::read_to_end(&mut reader, &mut image).unwrap();
                assert_eq!(image.len() as u64, total, "seed {seed} step {step}");
                let restored = import_snapshot(image.as_slice(), MemBackend::new()).unwrap();
                assert_eq!(restored.hash_kv(0).unwrap(), hash, "hash across snapshot");
            }
            assert_eq!(s.current_revision(), m.current);
            let at = rng.gen_range(s.compact_revision().max(1)..=m.current);
            let r = s
                .range(&RangeRequest {
                    revision: at,
                    ..range_req("\0", "\0")
                })
                .unwrap();
            let got: Vec<(String, String)> = r
                .kvs
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8(kv.key.clone()).unwrap(),
                        String::from_utf8(kv.value.clone()).unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, m.at(at), "seed {seed} step {step} at {at}");
            s.check_invariants();
        }
    }
}

/// A backend whose reads and writes fail on demand: a dying disk.
#[derive(Clone, Default)]
struct FlakyBackend {
    inner: MemBackend,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyBackend {
    fn check(&self) -> Result<()> {
        match self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            true => Err(MvccError::Backend("injected failure".into())),
            false => Ok(()),
        }
    }
}

impl Backend for FlakyBackend {
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.get(bucket, key)
    }
    fn scan(&self, b: Bucket, s: &[u8], e: Option<&[u8]>, n: usize) -> Result<Vec<backend::Entry>> {
        self.check()?;
        self.inner.scan(b, s, e, n)
    }
    fn write(&self, batch: backend::WriteBatch) -> Result<()> {
        self.check()?;
        self.inner.write(batch)
    }
    fn sync_durable(&self) -> Result<()> {
        self.check()?;
        self.inner.sync_durable()
    }
    fn size_bytes(&self) -> Result<u64> {
        self.inner.size_bytes()
    }
    fn fresh_sibling(&self) -> Result<Self> {
        Ok(FlakyBackend::default())
    }
    fn replace_with(&self, fresh: Self) -> Result<Self> {
        Ok(fresh)
    }
}

#[test]
fn backend_failure_poisons_until_reopen() {
    let backend = FlakyBackend::default();
    let mut s = Store::open(backend.clone()).unwrap();
    put_all(&mut s, &[("a", "1")], 1);
    let mut b = s.begin_apply().unwrap();
    b.put(&put_req("b", "1")).unwrap();
    backend
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        b.put(&put_req("a", "2")),
        Err(MvccError::Backend(_))
    ));
    backend
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(
        matches!(b.commit(2), Err(MvccError::Poisoned)),
        "a poisoned batch writes nothing"
    );
    assert!(matches!(
        s.range(&range_req("a", "")),
        Err(MvccError::Poisoned)
    ));
    let s = Store::open(backend).unwrap();
    assert_eq!(
        (s.current_revision(), s.applied_index()),
        (2, 1),
        "nothing of batch 2 landed"
    );
}

#[test]
fn install_snapshot_replaces_state_atomically_on_sled() {
    let mut leader = Store::open(MemBackend::new()).unwrap();
    put_all(&mut leader, &[("a", "1"), ("b", "2"), ("a", "3")], 40);
    let mut image = Vec::new();
    std::io::Read::read_to_end(&mut leader.snapshot().unwrap(), &mut image).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = || SledBackend::open(dir.path(), SledConfig::default()).unwrap();
    let mut follower = Store::open(open()).unwrap();
    put_all(&mut follower, &[("stale", "x")], 3);
    let bad = &image[..image.len() - 1];
    assert!(matches!(
        follower.install_snapshot(bad),
        Err(MvccError::InvalidSnapshot(_))
    ));
    assert_eq!(
        follower.applied_index(),
        3,
        "a refused snapshot changes nothing"
    );
    follower.install_snapshot(image.as_slice()).unwrap();
    assert_eq!(follower.hash_kv(0).unwrap(), leader.hash_kv(0).unwrap());
    assert_eq!(
        (follower.applied_index(), follower.current_revision()),
        (40, 4)
    );
    put_all(&mut follower, &[("c", "1")], 41);
    drop(follower);
    let follower = Store::open(open()).unwrap();
    assert_eq!(
        (follower.applied_index(), follower.current_revision()),
        (41, 5)
    );
    assert!(follower
        .range(&range_req("stale", ""))
        .unwrap()
        .kvs
        .is_empty());
}

#[test]
fn defrag_on_mem_keeps_data_visible_to_clones() {
    let backend = MemBackend::new();
    let mut s = Store::open(backend.clone()).unwrap();
    put_all(&mut s, &[("a", "1"), ("a", "2"), ("b", "1")], 5);
    let hash = s.hash_kv(0).unwrap();
    s.defrag().unwrap();
    assert_eq!(s.hash_kv(0).unwrap(), hash);
    put_all(&mut s, &[("c", "1")], 6);
    drop(s);
    let s = Store::open(backend).unwrap();
    assert_eq!((s.applied_index(), s.current_revision()), (6, 5));
}
