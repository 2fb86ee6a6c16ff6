//! The server side of watch: the one thread that drives the watch hub's catch-up work
//! (unsynced watchers replaying history, parked victims retried) with the store locked, and
//! the accessors the API's watch streams use.
//!
//! The apply path itself hands each commit's events to the hub (`ready.rs`, under the store
//! lock). This thread never blocks on a client: the hub only `try_send`s. One thread for
//! every watcher: idle watchers cost no task and no timer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use super::{EtcdServer, ServerError};
use crate::mvcc::WatchHub;

/// How long the thread sleeps when nothing is waiting (it is woken on new work).
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// The pause between rounds while victims stay parked (etcd retries them every 10 ms).
const VICTIM_RETRY: Duration = Duration::from_millis(10);

/// Starts the watch sync thread; it ends when the server stops.
pub(super) fn spawn(shared: Arc<Shared>) -> Result<(), ServerError> {
    std::thread::Builder::new()
        .name(format!("watch-sync-{:x}", shared.member_id))
        .spawn(move || run(&shared))
        .map(|_| ())
        .map_err(|e| ServerError::Storage(format!("spawning the watch sync thread: {e}")))
}

fn run(shared: &Shared) {
    let hub = shared.watch_hub.clone();
    while !shared.stopped.load(Ordering::SeqCst) {
        hub.wait_for_work(IDLE_WAIT);
        match shared.store() {
            Ok(store) => hub.sync_step(&store),
            Err(_) => return,
        }
        let counts = hub.counts();
        shared.metrics.watcher_total.set(counts.watchers as i64);
        shared.metrics.slow_watcher_total.set(counts.slow as i64);
        if hub.has_victims() {
            std::thread::sleep(VICTIM_RETRY);
        }
    }
}

impl EtcdServer {
    /// The watch hub (the watchable store's watchers) of this member.
    pub fn watch_hub(&self) -> Arc<WatchHub> {
        self.shared().watch_hub.clone()
    }

    /// Counts an opened (+1) or closed (-1) watch stream in the metrics.
    pub fn watch_streams_add(&self, delta: i64) {
        self.shared().metrics.watch_stream_total.inc_by(delta);
    }
}

impl EtcdServer {
    /// A response header at `revision` (no store lock: watch replies name their revision).
    pub fn watch_header(&self, revision: i64) -> crate::proto::etcdserverpb::ResponseHeader {
        self.shared().header(revision)
    }
}
