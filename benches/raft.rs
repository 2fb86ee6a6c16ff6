//! Propose-to-commit throughput of an in-memory 3-node cluster.
//!
//! Each iteration proposes a batch of 128-byte entries at the leader (all before its next
//! Ready, as the server batches client requests) and delivers messages until the cluster
//! is quiet, so every entry is replicated, committed and applied on all three nodes. The
//! simulator's disk and network cost next to nothing, so this measures the Raft core (and
//! the Ready loop around it), not IO. Invariant history is off here: it would grow without
//! bound over millions of entries.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raftkv::raft::NodeId;
use raftkv::sim::{Cluster, ClusterConfig};

const PAYLOAD_BYTES: usize = 128;

/// A 3-node cluster with node 1 elected and its first entry committed.
fn elected_cluster() -> Cluster {
    let mut config = ClusterConfig::new(7);
    config.check_history = false;
    config.compact_every = 10_000;
    let mut cluster = Cluster::new(config);
    cluster.bootstrap(3);
    cluster.campaign(NodeId(1));
    while cluster.deliver_one() {}
    assert_eq!(
        cluster.leader(),
        Some(NodeId(1)),
        "node 1 must win the uncontested election"
    );
    cluster
}

fn propose_to_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("propose_to_commit_3_nodes");
    let payload = Bytes::from(vec![0xab; PAYLOAD_BYTES]);
    for batch in [1u64, 100] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut cluster = elected_cluster();
            let leader = NodeId(1);
            let proposals = vec![payload.clone(); batch as usize];
            b.iter(|| {
                cluster
                    .propose_batch(leader, &proposals)
                    .expect("the leader accepts");
                while cluster.deliver_one() {}
                let raw = cluster.node(leader).raw();
                assert_eq!(raw.commit(), raw.last_index(), "the whole batch commits");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, propose_to_commit);
criterion_main!(benches);
