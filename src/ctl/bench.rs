//! `raftkvctl bench put|range|txn`: N clients, each with one request in flight, share M gRPC
//! connections and together send `--total` requests; the summary gives total time,
//! throughput and latency percentiles (see `report.rs`).
//!
//! Like etcd's `benchmark` tool: connection j goes to endpoint `j % endpoints`, client i uses
//! connection `i % conns`, and clients take request numbers from one shared counter, so the
//! total is exact however fast each client is. Keys are zero-padded decimal numbers drawn
//! uniformly from `--key-space` (so `bench put` then `bench range` with the same key space
//! reads the keys written), from a seeded RNG per client: a run's keys replay from `--seed`.
//!
//! `txn` is an optimistic update: `if mod_revision(key) == last seen { put } else { range }`.
//! "Last seen" is what this client learnt from its previous txn on that key (0 before it has
//! seen the key, which succeeds only if the key does not exist yet); the range on failure
//! teaches it the current mod_revision. Failed compares are counted as conflicts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use tonic::transport::Channel;

use super::args::{BenchArgs, Consistency, Workload};
use super::error::CtlError;
use super::report::{format_summary, ClientStats};
use super::{bench_watch, client};
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};

/// What every client shares: the workload, the value to write, and the request counter.
struct Shared {
    workload: Workload,
    key_size: usize,
    key_space: u64,
    total: u64,
    value: Bytes,
    next_request: AtomicU64,
}

/// Runs the benchmark and returns the printed summary.
pub async fn run(
    args: &BenchArgs,
    endpoints: &[String],
    dial_timeout: Duration,
    request_timeout: Duration,
) -> Result<String, CtlError> {
    validate(args)?;
    let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() >> 1);
    let title = title(args, endpoints, seed);
    let channels = connect_all(args.conns, endpoints, dial_timeout, Some(request_timeout)).await?;
    let Workload::Watch { writers } = args.workload else {
        return run_requests(args, &channels, seed, &title).await;
    };
    // Watch streams live for the whole run: no per-request timeout on their channels.
    let streams = connect_all(args.conns, endpoints, dial_timeout, None).await?;
    bench_watch::run(
        args,
        writers,
        &channels,
        &streams,
        seed,
        &title,
        request_timeout,
    )
    .await
}

/// Connection j goes to endpoint `j % endpoints`; `None` = no request timeout (streams).
async fn connect_all(
    conns: usize,
    endpoints: &[String],
    dial_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Vec<Channel>, CtlError> {
    let mut channels = Vec::with_capacity(conns);
    for j in 0..conns {
        let endpoint = &endpoints[j % endpoints.len()];
        channels.push(match request_timeout {
            Some(timeout) => client::connect(endpoint, dial_timeout, timeout).await?,
            None => client::connect_streaming(endpoint, dial_timeout).await?,
        });
    }
    Ok(channels)
}

/// put, range or txn: `--clients` tasks sending one request at a time.
async fn run_requests(
    args: &BenchArgs,
    channels: &[Channel],
    seed: u64,
    title: &str,
) -> Result<String, CtlError> {
    let shared = Arc::new(Shared {
        workload: args.workload.clone(),
        key_size: args.key_size,
        key_space: args.key_space,
        total: args.total,
        value: random_value(args.val_size, seed),
        next_request: AtomicU64::new(0),
    });
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let kv = KvClient::new(channels[i % channels.len()].clone());
            let rng = SmallRng::seed_from_u64(seed.wrapping_add(i as u64));
            tokio::spawn(run_client(kv, rng, shared.clone()))
        })
        .collect();
    let mut stats = ClientStats::default();
    for client in clients {
        stats.merge(&client.await.expect("bench client panicked"));
    }
    let summary = format_summary(title, &stats, started.elapsed(), is_txn(args));
    if stats.ok() == 0 {
        print!("{summary}");
        return Err(CtlError::BenchFailed(stats.failed()));
    }
    Ok(summary)
}

fn validate(args: &BenchArgs) -> Result<(), CtlError> {
    let invalid = |why: String| Err(CtlError::InvalidBench(why));
    if args.clients == 0 || args.conns == 0 || args.total == 0 || args.key_space == 0 {
        return invalid("--clients, --conns, --total and --key-space must be at least 1".into());
    }
    if let Workload::Watch { writers } = args.workload {
        if writers == 0 || args.val_size < bench_watch::TIMESTAMP_BYTES {
            return invalid("watch needs --writers >= 1 and --val-size >= 8".into());
        }
    }
    let digits = (args.key_space - 1).to_string().len();
    if args.key_size < digits {
        return invalid(format!(
            "--key-size {} is too short for --key-space {} (needs {digits} bytes)",
            args.key_size, args.key_space
        ));
    }
    Ok(())
}

fn is_txn(args: &BenchArgs) -> bool {
    matches!(args.workload, Workload::Txn)
}

fn title(args: &BenchArgs, endpoints: &[String], seed: u64) -> String {
    let workload = match &args.workload {
        Workload::Put => "put".to_string(),
        Workload::Range {
            consistency: Consistency::L,
        } => "range (linearizable)".to_string(),
        Workload::Range {
            consistency: Consistency::S,
        } => "range (serializable)".to_string(),
        Workload::Txn => "txn (compare mod_revision + put)".to_string(),
        Workload::Watch { writers } => format!("watch ({writers} writers, 1 watcher per client)"),
    };
    format!(
        "bench {workload}: {} requests, {} clients, {} conns, key {} B, value {} B, \
         key space {}, seed {seed}, endpoints {}",
        args.total,
        args.clients,
        args.conns,
        args.key_size,
        args.val_size,
        args.key_space,
        endpoints.join(",")
    )
}

/// Key number `n` as `key_size` bytes: zero-padded decimal.
pub fn bench_key(n: u64, key_size: usize) -> Bytes {
    Bytes::from(format!("{n:0key_size$}"))
}

fn random_value(size: usize, seed: u64) -> Bytes {
    let mut value = vec![0u8; size];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut value);
    Bytes::from(value)
}

/// One client: takes request numbers until the total is reached, one request at a time.
async fn run_client(
    mut kv: KvClient<Channel>,
    mut rng: SmallRng,
    shared: Arc<Shared>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut seen_mod_revision: HashMap<u64, i64> = HashMap::new();
    while shared.next_request.fetch_add(1, Ordering::Relaxed) < shared.total {
        let n = rng.gen_range(0..shared.key_space);
        let key = bench_key(n, shared.key_size);
        let started = Instant::now();
        let result = match shared.workload {
            Workload::Put => put(&mut kv, key, shared.value.clone()).await,
            Workload::Range { consistency } => range(&mut kv, key, consistency).await,
            Workload::Watch { .. } => unreachable!("bench watch runs in bench_watch.rs"),
            Workload::Txn => {
                let seen = seen_mod_revision.entry(n).or_insert(0);
                txn(
                    &mut kv,
                    key,
                    shared.value.clone(),
                    seen,
                    &mut stats.txn_conflicts,
                )
                .await
            }
        };
        match result {
            Ok(()) => stats.record(started.elapsed()),
            Err(status) => stats.record_error(format!("{:?}: {}", status.code(), status.message())),
        }
    }
    stats
}

async fn put(kv: &mut KvClient<Channel>, key: Bytes, value: Bytes) -> Result<(), tonic::Status> {
    kv.put(PutRequest {
        key,
        value,
        ..Default::default()
    })
    .await
    .map(drop)
}

async fn range(
    kv: &mut KvClient<Channel>,
    key: Bytes,
    consistency: Consistency,
) -> Result<(), tonic::Status> {
    let serializable = consistency == Consistency::S;
    kv.range(RangeRequest {
        key,
        serializable,
        ..Default::default()
    })
    .await
    .map(drop)
}

/// `if mod_revision(key) == *seen { put } else { range }`; updates `*seen` either way.
async fn txn(
    kv: &mut KvClient<Channel>,
    key: Bytes,
    value: Bytes,
    seen: &mut i64,
    conflicts: &mut u64,
) -> Result<(), tonic::Status> {
    let compare = Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: key.clone(),
        target_union: Some(TargetUnion::ModRevision(*seen)),
        ..Default::default()
    };
    let put = PutRequest {
        key: key.clone(),
        value,
        ..Default::default()
    };
    let read = RangeRequest {
        key,
        ..Default::default()
    };
    let request = TxnRequest {
        compare: vec![compare],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(put)),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(read)),
        }],
    };
    let response = kv.txn(request).await?.into_inner();
    if response.succeeded {
        // The put's mod_revision is the txn's revision, which the header carries.
        *seen = response.header.map_or(0, |h| h.revision);
        return Ok(());
    }
    *conflicts += 1;
    *seen = match response.responses.first().and_then(|r| r.response.as_ref()) {
        Some(Response::ResponseRange(range)) => range.kvs.first().map_or(0, |kv| kv.mod_revision),
        _ => 0,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_to_key_size() {
        assert_eq!(bench_key(42, 8), Bytes::from_static(b"00000042"));
        assert_eq!(bench_key(0, 1), Bytes::from_static(b"0"));
    }

    #[test]
    fn key_size_must_hold_the_key_space() {
        use clap::Parser;
        let parse = |extra: &[&str]| {
            let cli = super::super::args::Cli::parse_from(
                ["raftkvctl", "bench"].iter().chain(extra).chain(&["put"]),
            );
            match cli.command {
                super::super::args::Command::Bench(args) => validate(&args),
                _ => unreachable!(),
            }
        };
        assert!(parse(&["--key-size", "3", "--key-space", "1000"]).is_ok());
        assert!(parse(&["--key-size", "3", "--key-space", "1001"]).is_err());
        assert!(parse(&["--clients", "0"]).is_err());
    }
}
