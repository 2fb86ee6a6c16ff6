//! `raftkvctl bench watch`: how fast a put reaches watchers.
//!
//! `--clients` watchers, each on its own Watch stream (streams share `--conns` connections),
//! all watch the whole benchmark key space. Once every watch is created, `--writers`
//! concurrent writers put `--total` random keys. Each value starts with the time its put was
//! sent (nanoseconds since the run began, 8 bytes little-endian), so a watcher measures
//! delivery latency (put sent -> event received) without any clock shared but ours. Every
//! watcher should see every put: `total * clients` events. A watcher that hears nothing for
//! `--command-timeout` gives up and the shortfall is reported.
//!
//! Two summaries come out: the writers' puts, and the events' delivery latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, Barrier};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::args::BenchArgs;
use super::bench::bench_key;
use super::error::CtlError;
use super::report::{format_summary, ClientStats};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};

/// Bytes of the send timestamp at the front of every value.
pub const TIMESTAMP_BYTES: usize = 8;

/// What watchers and writers share.
struct Shared {
    started: Instant,
    key_size: usize,
    key_space: u64,
    total: u64,
    val_size: usize,
    next_put: AtomicU64,
    idle_timeout: Duration,
}

/// Runs the watch benchmark: puts over `put_channels`, Watch streams over `watch_channels`
/// (no request timeout); returns the two summaries.
pub async fn run(
    args: &BenchArgs,
    writers: usize,
    put_channels: &[Channel],
    watch_channels: &[Channel],
    seed: u64,
    title: &str,
    idle_timeout: Duration,
) -> Result<String, CtlError> {
    let shared = Arc::new(Shared {
        started: Instant::now(),
        key_size: args.key_size,
        key_space: args.key_space,
        total: args.total,
        val_size: args.val_size,
        next_put: AtomicU64::new(0),
        idle_timeout,
    });
    // Watchers and the main task meet here once every watch is created.
    let created = Arc::new(Barrier::new(args.clients + 1));
    let watchers: Vec<_> = (0..args.clients)
        .map(|i| {
            let watch = WatchClient::new(watch_channels[i % watch_channels.len()].clone());
            tokio::spawn(run_watcher(watch, shared.clone(), created.clone()))
        })
        .collect();
    created.wait().await;
    let put_started = Instant::now();
    let writer_tasks: Vec<_> = (0..writers)
        .map(|i| {
            let kv = KvClient::new(put_channels[i % put_channels.len()].clone());
            let rng = SmallRng::seed_from_u64(seed.wrapping_add(i as u64));
            tokio::spawn(run_writer(kv, rng, shared.clone()))
        })
        .collect();
    let mut puts = ClientStats::default();
    for writer in writer_tasks {
        puts.merge(&writer.await.expect("bench writer panicked"));
    }
    let put_elapsed = put_started.elapsed();
    let mut events = ClientStats::default();
    for watcher in watchers {
        events.merge(&watcher.await.expect("bench watcher panicked"));
    }
    let events_elapsed = put_started.elapsed();
    let expected = args.total * args.clients as u64;
    let mut text = format_summary(
        &format!("{title}\nputs ({writers} writers):"),
        &puts,
        put_elapsed,
        false,
    );
    text.push_str(&format_summary(
        "watch events (put sent -> event received):",
        &events,
        events_elapsed,
        false,
    ));
    text.push_str(&format!(
        "  events:     {} received of {expected} expected\n",
        events.ok()
    ));
    if puts.ok() == 0 {
        print!("{text}");
        return Err(CtlError::BenchFailed(puts.failed()));
    }
    Ok(text)
}

/// One writer: puts timestamped values until the total is reached.
async fn run_writer(
    mut kv: KvClient<Channel>,
    mut rng: SmallRng,
    shared: Arc<Shared>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    while shared.next_put.fetch_add(1, Ordering::Relaxed) < shared.total {
        let key = bench_key(rng.gen_range(0..shared.key_space), shared.key_size);
        let sent = Instant::now();
        let value = timestamped_value(sent.duration_since(shared.started), shared.val_size);
        match kv
            .put(PutRequest {
                key,
                value,
                ..Default::default()
            })
            .await
        {
            Ok(_) => stats.record(sent.elapsed()),
            Err(status) => stats.record_error(format!("{:?}: {}", status.code(), status.message())),
        }
    }
    stats
}

/// One watcher: creates its watch, waits at the barrier, then records every event's delay.
async fn run_watcher(
    mut watch: WatchClient<Channel>,
    shared: Arc<Shared>,
    created: Arc<Barrier>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    // The sender stays alive for the whole run: closing it would half-close the stream.
    let (requests, receiver) = mpsc::channel(1);
    let create = WatchCreateRequest {
        key: bench_key(0, shared.key_size),
        range_end: watch_range_end(shared.key_space, shared.key_size),
        ..Default::default()
    };
    let _ = requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await;
    let mut responses = match watch.watch(ReceiverStream::new(receiver)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            stats.record_error(format!("watch: {:?}: {}", status.code(), status.message()));
            created.wait().await;
            return stats;
        }
    };
    let mut is_created = false;
    loop {
        let next = tokio::time::timeout(shared.idle_timeout, responses.message()).await;
        let response = match next {
            Ok(Ok(Some(response))) => response,
            Ok(Err(status)) => {
                stats.record_error(format!("watch: {:?}: {}", status.code(), status.message()));
                break;
            }
            // Stream ended or went quiet: whatever was not delivered counts as missing.
            Ok(Ok(None)) | Err(_) => break,
        };
        if response.created && !is_created {
            is_created = true;
            created.wait().await;
        }
        if response.canceled {
            stats.record_error(format!("watch canceled: {}", response.cancel_reason));
            break;
        }
        let now = shared.started.elapsed();
        for event in response.events.iter().filter_map(|e| e.kv.as_ref()) {
            stats.record(now.saturating_sub(sent_at(&event.value)));
        }
        if stats.ok() >= shared.total {
            break;
        }
    }
    if !is_created {
        created.wait().await;
    }
    stats
}

/// The exclusive end of the bench key space: the last key with a 0 byte appended.
fn watch_range_end(key_space: u64, key_size: usize) -> Bytes {
    let mut end = BytesMut::from(&bench_key(key_space - 1, key_size)[..]);
    end.put_u8(0);
    end.freeze()
}

/// `val_size` bytes starting with `since_start` in nanoseconds (little-endian u64).
fn timestamped_value(since_start: Duration, val_size: usize) -> Bytes {
    let nanos = u64::try_from(since_start.as_nanos()).unwrap_or(u64::MAX);
    let mut value = BytesMut::with_capacity(val_size);
    value.put_u64_le(nanos);
    value.resize(val_size.max(TIMESTAMP_BYTES), b'w');
    value.freeze()
}

/// The send time a value carries (zero for a value not written by this benchmark).
fn sent_at(value: &[u8]) -> Duration {
    match value.get(..TIMESTAMP_BYTES) {
        Some(bytes) => Duration::from_nanos(u64::from_le_bytes(bytes.try_into().expect("8 bytes"))),
        None => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_send_time() {
        let value = timestamped_value(Duration::from_micros(1234), 256);
        assert_eq!(value.len(), 256);
        assert_eq!(sent_at(&value), Duration::from_micros(1234));
        assert_eq!(sent_at(b"short"), Duration::ZERO);
    }

    #[test]
    fn range_end_covers_the_last_key_only() {
        assert_eq!(watch_range_end(100, 4), Bytes::from_static(b"0099\0"));
    }
}
