//! Append + fdatasync throughput of the WAL on real files: 128-byte entries, 1, 10 and 100
//! entries per sync (group commit). Criterion reports entries per second.
//!
//! Run with `cargo bench --bench wal`. The temp directory is on the default temp filesystem
//! (set `TMPDIR` to measure another disk); on tmpfs fdatasync is free and numbers mean little.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raftkv::raft::{Entry, EntryKind, Index, Term};
use raftkv::wal::{FsDisk, Wal, WalOptions};
use std::time::Duration;

const ENTRY_DATA_BYTES: usize = 128;

fn append_and_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_sync");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let data = Bytes::from(vec![0xab; ENTRY_DATA_BYTES]);
    for entries_per_sync in [1u64, 10, 100] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(FsDisk, dir.path(), WalOptions::default()).expect("open");
        let mut next_index = 1;
        group.throughput(Throughput::Elements(entries_per_sync));
        group.bench_function(
            BenchmarkId::new("entries_per_sync", entries_per_sync),
            |b| {
                b.iter(|| {
                    let batch: Vec<Entry> = (next_index..next_index + entries_per_sync)
                        .map(|index| Entry {
                            term: Term(1),
                            index: Index(index),
                            kind: EntryKind::Normal,
                            data: data.clone(),
                        })
                        .collect();
                    next_index += entries_per_sync;
                    wal.append(&batch).expect("append");
                    wal.sync().expect("sync");
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append_and_sync);
criterion_main!(benches);
