//! Unit tests of the watchable store (`watch.rs`, `watch_sync.rs`) over a [`MemBackend`]
//! store: seeded random traffic with watchers created at random revisions behind sinks of
//! random speed, checked against the store's own history (`events_in`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// A sink with a capacity; `Full` when that many batches wait undrained.
struct TestSink {
    queue: Mutex<VecDeque<WatchBatch>>,
    capacity: usize,
}

impl TestSink {
    fn new(capacity: usize) -> Arc<TestSink> {
        Arc::new(TestSink {
            queue: Mutex::new(VecDeque::new()),
            capacity,
        })
    }

    fn drain(&self) -> Vec<WatchBatch> {
        self.queue.lock().unwrap().drain(..).collect()
    }
}

impl WatchSink for TestSink {
    fn try_send(&self, batch: WatchBatch) -> std::result::Result<(), SinkError> {
        let mut q = self.queue.lock().unwrap();
        if q.len() >= self.capacity {
            return Err(SinkError::Full(batch));
        }
        q.push_back(batch);
        Ok(())
    }
}

fn seed() -> u64 {
    let seed = std::env::var("SEED").map_or_else(|_| rand::random(), |s| s.parse().unwrap());
    eprintln!("SEED={seed}");
    seed
}

const KEYS: &[&str] = &["a", "b", "c", "d", "e"];

/// One random write request; returns the commit's events.
fn random_commit(store: &mut Store<MemBackend>, rng: &mut StdRng, index: u64) -> Vec<Event> {
    let mut b = store.begin_apply().unwrap();
    for _ in 0..rng.gen_range(1..4) {
        let key = KEYS[rng.gen_range(0..KEYS.len())].as_bytes().to_vec();
        if rng.gen_bool(0.7) {
            let value = format!("v{}", rng.gen::<u16>()).into_bytes();
            b.put(&PutRequest {
                key,
                value,
                ..Default::default()
            })
            .unwrap();
        } else {
            let range_end = if rng.gen_bool(0.3) {
                b"d".to_vec()
            } else {
                Vec::new()
            };
            b.delete_range(&DeleteRangeRequest {
                key,
                range_end,
                prev_kv: false,
            })
            .ok();
        }
    }
    b.commit(index).unwrap().events
}

struct Probe {
    spec: WatchSpec,
    sink: Arc<TestSink>,
    got: Vec<WatchBatch>,
}

fn random_spec(rng: &mut StdRng, current: i64, tag: i64) -> WatchSpec {
    let (key, range_end) = match rng.gen_range(0..3) {
        0 => (b"b".to_vec(), Vec::new()),
        1 => (b"b".to_vec(), b"e".to_vec()),
        _ => (b"a".to_vec(), vec![0]),
    };
    WatchSpec {
        key,
        range_end,
        start_revision: rng.gen_range(0..=current + 2),
        prev_kv: rng.gen_bool(0.5),
        no_put: rng.gen_bool(0.15),
        no_delete: rng.gen_bool(0.15),
        tag,
    }
}

#[test]
fn random_traffic_delivers_ordered_unique_reliable_atomic_events_to_every_watcher() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = Store::open(MemBackend::new()).unwrap();
    let hub = WatchHub::new(store.current_revision());
    let mut probes: Vec<Probe> = Vec::new();
    for step in 0..400u64 {
        if rng.gen_bool(0.1) {
            let tag = probes.len() as i64;
            let spec = random_spec(&mut rng, store.current_revision(), tag);
            let sink = TestSink::new(rng.gen_range(1..4));
            hub.watch(spec.clone(), sink.clone());
            probes.push(Probe {
                spec,
                sink,
                got: Vec::new(),
            });
        }
        let events = random_commit(&mut store, &mut rng, step + 1);
        hub.notify(&events, store.current_revision());
        if rng.gen_bool(0.3) {
            hub.sync_step(&store);
        }
        for p in probes.iter_mut().filter(|_| rng.gen_bool(0.5)) {
            p.got.extend(p.sink.drain());
        }
        hub.check_invariants();
    }
    for _ in 0..10_000 {
        for p in &mut probes {
            p.got.extend(p.sink.drain());
        }
        hub.sync_step(&store);
        if hub.counts().slow == 0 {
            break;
        }
    }
    assert_eq!(
        hub.counts().slow,
        0,
        "seed {seed}: watchers never caught up"
    );
    for p in &mut probes {
        p.got.extend(p.sink.drain());
        check_probe(&store, p, seed);
    }
}

/// Every event the history holds for the watcher, once, in order, with whole revisions
/// per batch and prev_kv exactly when asked.
fn check_probe(store: &Store<MemBackend>, p: &Probe, seed: u64) {
    let s = &p.spec;
    let from = if s.start_revision == 0 {
        1
    } else {
        s.start_revision
    };
    let all = store
        .events_in(
            &s.key,
            &s.range_end,
            from,
            store.current_revision(),
            s.prev_kv,
            usize::MAX,
        )
        .unwrap();
    let mut delivered: Vec<Event> = Vec::new();
    let mut last_batch_revision = 0;
    for b in &p.got {
        assert_eq!(b.tag, Some(s.tag), "seed {seed}");
        assert!(
            b.revision >= last_batch_revision,
            "seed {seed}: batch revisions go back"
        );
        last_batch_revision = b.revision;
        if let (Some(first), Some(prev)) = (b.events.first(), delivered.last()) {
            assert!(
                first.kv.mod_revision > prev.kv.mod_revision,
                "seed {seed}: revision {} split across batches or out of order",
                first.kv.mod_revision
            );
        }
        delivered.extend(b.events.iter().cloned());
    }
    let first_rev = delivered.first().map(|e| e.kv.mod_revision);
    let expected: Vec<Event> = all
        .into_iter()
        .filter(|e| first_rev.is_some_and(|r| e.kv.mod_revision >= r) || s.start_revision != 0)
        .filter(|e| match e.kind {
            EventType::Put => !s.no_put,
            EventType::Delete => !s.no_delete,
        })
        .collect();
    if s.start_revision == 0 {
        // A watch from "now" starts at some commit after creation: a suffix of history.
        assert!(expected.ends_with(&delivered), "seed {seed}: {:?}", s);
    } else {
        assert_eq!(delivered, expected, "seed {seed}: watcher {:?}", s);
    }
}

#[test]
fn a_start_below_the_compacted_revision_gets_one_compaction_batch_and_is_removed() {
    let mut store = Store::open(MemBackend::new()).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for i in 1..=10 {
        random_commit(&mut store, &mut rng, i);
    }
    let mut b = store.begin_apply().unwrap();
    b.compact(6).unwrap();
    b.commit(11).unwrap();
    let hub = WatchHub::new(store.current_revision());
    let sink = TestSink::new(8);
    let spec = WatchSpec {
        key: b"a".to_vec(),
        range_end: vec![0],
        start_revision: 3,
        tag: 7,
        ..Default::default()
    };
    let (id, _) = hub.watch(spec, sink.clone());
    hub.sync_step(&store);
    let got = sink.drain();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].tag, got[0].compact_revision), (Some(7), 6));
    assert!(got[0].events.is_empty());
    assert!(!hub.cancel(id), "a compacted watcher is gone from the hub");
    assert_eq!(hub.counts(), WatchCounts::default());
}

#[test]
fn a_full_sink_parks_its_watcher_without_blocking_and_the_retry_loses_nothing() {
    let mut store = Store::open(MemBackend::new()).unwrap();
    let hub = WatchHub::new(store.current_revision());
    let sink = TestSink::new(1);
    let spec = WatchSpec {
        key: b"a".to_vec(),
        range_end: vec![0],
        tag: 1,
        ..Default::default()
    };
    hub.watch(spec, sink.clone());
    let mut rng = StdRng::seed_from_u64(2);
    for i in 1..=20 {
        let events = random_commit(&mut store, &mut rng, i);
        hub.notify(&events, store.current_revision());
    }
    assert_eq!(
        hub.counts().slow,
        1,
        "the watcher is a victim, not blocking notify"
    );
    let mut got: Vec<Event> = Vec::new();
    while hub.counts().slow > 0 || !sink.queue.lock().unwrap().is_empty() {
        got.extend(sink.drain().into_iter().flat_map(|b| b.events));
        hub.sync_step(&store);
        hub.check_invariants();
    }
    let all = store.events_in(b"a", &[0], 1, store.current_revision(), false, usize::MAX);
    let all: Vec<Event> = all.unwrap();
    let strip = |e: &Event| (e.kind, e.kv.clone());
    assert_eq!(
        got.iter().map(strip).collect::<Vec<_>>(),
        all.iter().map(strip).collect::<Vec<_>>()
    );
}

#[test]
fn progress_is_offered_only_when_every_watcher_of_the_stream_is_synced() {
    let mut store = Store::open(MemBackend::new()).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    for i in 1..=5 {
        random_commit(&mut store, &mut rng, i);
    }
    let hub = WatchHub::new(store.current_revision());
    let sink = TestSink::new(8);
    let past = WatchSpec {
        key: b"a".to_vec(),
        range_end: vec![0],
        start_revision: 1,
        ..Default::default()
    };
    let (id, _) = hub.watch(past, sink.clone());
    assert!(
        !hub.request_progress(&[id], sink.as_ref()),
        "unsynced: no progress yet"
    );
    hub.sync_step(&store);
    assert!(hub.request_progress(&[id], sink.as_ref()));
    let got = sink.drain();
    let progress = got.last().unwrap();
    assert_eq!(
        (progress.tag, progress.revision),
        (None, store.current_revision())
    );
    assert!(progress.events.is_empty());
}
