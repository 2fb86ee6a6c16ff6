//! Benchmarks of the MVCC store on the sled backend (in a tempdir): one put, a point
//! range, a 1,000-key prefix range and a txn (compare + put), each at 100k and 1M keys.
//!
//! Each write is its own apply batch, as when the server applies one committed entry at a
//! time. Each size's store is loaded once, with 10,000 puts per apply batch, and the load
//! rate is printed. `MVCC_BENCH_KEYS=100000` (comma-separated) picks the sizes. For the
//! memory and disk footprint see `examples/mvcc_footprint.rs`.

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use raftkv::mvcc::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bytes per value in the benchmark stores.
const VALUE_BYTES: usize = 64;
/// Puts per apply batch while loading.
const LOAD_BATCH_KEYS: u64 = 10_000;

fn key(i: u64) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

/// A store of `keys` keys (`key/00000000`..) with `VALUE_BYTES`-byte values.
fn load(dir: &std::path::Path, keys: u64) -> Store<SledBackend> {
    let backend = SledBackend::open(dir, SledConfig::default()).expect("open sled");
    let mut store = Store::open(backend).expect("open store");
    let started = Instant::now();
    let value = vec![b'v'; VALUE_BYTES];
    for first in (0..keys).step_by(LOAD_BATCH_KEYS as usize) {
        let applied = store.applied_index() + 1;
        let mut b = store.begin_apply().expect("begin_apply");
        for i in first..(first + LOAD_BATCH_KEYS).min(keys) {
            let req = PutRequest {
                key: key(i),
                value: value.clone(),
                ..Default::default()
            };
            b.put(&req).expect("put");
        }
        b.commit(applied).expect("commit");
    }
    store.sync_durable().expect("sync_durable");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loaded {keys} keys in {secs:.1} s ({:.0} puts/s), db_size {:?}",
        keys as f64 / secs,
        store.db_size().expect("db_size")
    );
    store
}

fn put_one(store: &mut Store<SledBackend>, req: &PutRequest) {
    let applied = store.applied_index() + 1;
    let mut b = store.begin_apply().expect("begin_apply");
    black_box(b.put(req).expect("put"));
    b.commit(applied).expect("commit");
}

fn bench_size(c: &mut Criterion, keys: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = load(dir.path(), keys);
    let mut rng = SmallRng::seed_from_u64(keys);
    let mut group = c.benchmark_group(format!("mvcc_sled_{keys}_keys"));
    group.bench_function("put", |b| {
        b.iter(|| {
            let req = PutRequest {
                key: key(rng.gen_range(0..keys)),
                value: vec![b'w'; VALUE_BYTES],
                ..Default::default()
            };
            put_one(&mut store, &req);
        })
    });
    group.bench_function("range_point", |b| {
        b.iter(|| {
            let req = RangeRequest {
                key: key(rng.gen_range(0..keys)),
                ..Default::default()
            };
            black_box(store.range(&req).expect("range"));
        })
    });
    group.bench_function("range_prefix_1000", |b| {
        b.iter(|| {
            let block = rng.gen_range(0..keys / 1000);
            let req = RangeRequest {
                key: format!("key/{block:05}").into_bytes(),
                range_end: format!("key/{:05}", block + 1).into_bytes(),
                ..Default::default()
            };
            let resp = store.range(&req).expect("range");
            assert_eq!(resp.kvs.len(), 1000);
            black_box(resp);
        })
    });
    group.bench_function("txn_compare_put", |b| {
        b.iter(|| {
            let k = key(rng.gen_range(0..keys));
            let req = TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Greater,
                    target: CompareTarget::Mod(0),
                    key: k.clone(),
                    range_end: vec![],
                }],
                success: vec![RequestOp::Put(PutRequest {
                    key: k,
                    value: vec![b't'; VALUE_BYTES],
                    ..Default::default()
                })],
                failure: vec![],
            };
            let applied = store.applied_index() + 1;
            let mut b = store.begin_apply().expect("begin_apply");
            assert!(b.txn(&req).expect("txn").succeeded);
            b.commit(applied).expect("commit");
        })
    });
    group.finish();
}

fn main() {
    let sizes: Vec<u64> = std::env::var("MVCC_BENCH_KEYS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("a key count"))
        .collect();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for keys in sizes {
        bench_size(&mut c, keys);
    }
    c.final_summary();
}
