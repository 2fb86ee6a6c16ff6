//! The `etcdserverpb.Watch` service: one bidi stream carries many watchers.
//!
//! Each stream is ONE tokio task (`StreamTask::run`) that reads requests (create, cancel,
//! progress), forwards the watch hub's batches (from a bounded channel the hub `try_send`s
//! into) and sends the periodic progress notifications; idle watchers cost no task and no
//! timer. Ordering rules (etcd's, which the Go client depends on): every create gets exactly
//! one `created` reply, in request order, and it goes out before the watcher is registered,
//! so no event of a watcher can precede its `created`. A slow client blocks only this task;
//! the hub then parks its watchers as victims (`src/mvcc/watch_sync.rs`).
//!
//! With the `hasleader=true` metadata the stream fails with `etcdserver: no leader` when the
//! member has (or loses) no leader. This file must not read the store: catch-up and
//! filtering live in the hub.

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::watch_reply::{batch_response, fragments};
use crate::mvcc::{SinkError, WatchBatch, WatchHub, WatchSink, WatchSpec, WatcherId};
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::server::EtcdServer;

/// Batches the hub may queue for one stream before its watchers become victims.
const STREAM_BATCHES_MAX: usize = 1024;

/// Responses queued towards the client (gRPC's side of the stream).
const REPLIES_MAX: usize = 16;

/// How often a `hasleader` stream checks that the member still has a leader, and how
/// often an unanswered progress request is retried.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// etcd's message when a watcher's id is already taken on the stream.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// etcd's message for a create whose range is empty (key >= range_end).
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";

/// The watch service's settings.
#[derive(Clone, Copy, Debug)]
pub struct WatchOptions {
    /// `--watch-progress-notify-interval` (etcd's default: 10 minutes).
    pub progress_notify_interval: Duration,
    /// Responses above this many bytes are split for `fragment` watchers
    /// (`--max-request-bytes`).
    pub fragment_bytes_max: usize,
}

/// The Watch service over one member.
pub struct WatchService {
    server: EtcdServer,
    opts: WatchOptions,
}

impl WatchService {
    /// Serve watch streams on `server`.
    pub fn new(server: EtcdServer, opts: WatchOptions) -> WatchService {
        WatchService { server, opts }
    }
}

type Replies = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Replies;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Replies>, Status> {
        let leader_required = req
            .metadata()
            .get("hasleader")
            .is_some_and(|v| v.as_bytes() == b"true");
        if leader_required && self.server.leader().is_none() {
            return Err(no_leader());
        }
        let (replies, replies_rx) = mpsc::channel(REPLIES_MAX);
        let (batches_tx, batches) = mpsc::channel(STREAM_BATCHES_MAX);
        let task = StreamTask {
            hub: self.server.watch_hub(),
            server: self.server.clone(),
            opts: self.opts,
            sink: Arc::new(ChannelSink(batches_tx)),
            replies,
            watchers: BTreeMap::new(),
            progress_ids: HashSet::new(),
            quiet: HashSet::new(),
            fragment_ids: HashSet::new(),
            next_id: 0,
            progress_pending: false,
            leader_required,
        };
        tokio::spawn(task.run(req.into_inner(), batches));
        Ok(Response::new(Box::pin(ReceiverStream::new(replies_rx))))
    }
}

fn no_leader() -> Status {
    Status::unavailable("etcdserver: no leader")
}

/// The hub's way into a stream: a bounded channel, never waited on.
struct ChannelSink(mpsc::Sender<WatchBatch>);

impl WatchSink for ChannelSink {
    fn try_send(&self, batch: WatchBatch) -> Result<(), SinkError> {
        self.0.try_send(batch).map_err(|e| match e {
            mpsc::error::TrySendError::Full(b) => SinkError::Full(b),
            mpsc::error::TrySendError::Closed(_) => SinkError::Closed,
        })
    }
}

/// The state of one stream, owned by its task.
struct StreamTask {
    hub: Arc<WatchHub>,
    server: EtcdServer,
    opts: WatchOptions,
    sink: Arc<ChannelSink>,
    replies: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    /// The stream's watch ids and their hub ids.
    watchers: BTreeMap<i64, WatcherId>,
    /// Watch ids that asked for progress notifications.
    progress_ids: HashSet<i64>,
    /// Of those, the ones with no response since the last tick.
    quiet: HashSet<i64>,
    /// Watch ids that accept fragmented responses.
    fragment_ids: HashSet<i64>,
    /// The next id to assign (etcd: per stream, from 0, skipping taken ones).
    next_id: i64,
    /// A progress request waiting for every watcher to be synced.
    progress_pending: bool,
    leader_required: bool,
}

impl StreamTask {
    async fn run(
        mut self,
        mut requests: Streaming<pb::WatchRequest>,
        mut batches: mpsc::Receiver<WatchBatch>,
    ) {
        self.server.watch_streams_add(1);
        let mut progress = tokio::time::interval(self.opts.progress_notify_interval);
        progress.tick().await;
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        let result: Result<(), Status> = loop {
            tokio::select! {
                req = requests.message() => match req {
                    Ok(Some(req)) => {
                        if self.on_request(req).await.is_err() {
                            break Ok(());
                        }
                    }
                    Ok(None) | Err(_) => break Ok(()),
                },
                Some(batch) = batches.recv() => {
                    if self.on_batch(batch).await.is_err() {
                        break Ok(());
                    }
                }
                _ = progress.tick() => self.on_progress_tick(),
                _ = check.tick() => {
                    if self.leader_required && self.server.leader().is_none() {
                        break Err(no_leader());
                    }
                    if self.progress_pending {
                        self.try_progress();
                    }
                }
            }
        };
        for id in self.watchers.values() {
            self.hub.cancel(*id);
        }
        if let Err(status) = result {
            let _ = self.replies.send(Err(status)).await;
        }
        self.server.watch_streams_add(-1);
    }

    async fn send(&self, resp: pb::WatchResponse) -> Result<(), ()> {
        self.replies.send(Ok(resp)).await.map_err(|_| ())
    }

    async fn on_request(&mut self, req: pb::WatchRequest) -> Result<(), ()> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.on_create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                let Some(hub_id) = self.watchers.remove(&c.watch_id) else {
                    return Ok(());
                };
                self.forget(c.watch_id);
                self.hub.cancel(hub_id);
                let resp = pb::WatchResponse {
                    header: Some(self.server.watch_header(self.hub.current_revision())),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                };
                self.send(resp).await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.progress_pending = true;
                self.try_progress();
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn forget(&mut self, watch_id: i64) {
        self.progress_ids.remove(&watch_id);
        self.quiet.remove(&watch_id);
        self.fragment_ids.remove(&watch_id);
    }

    async fn on_create(&mut self, c: pb::WatchCreateRequest) -> Result<(), ()> {
        let taken = c.watch_id != 0 && self.watchers.contains_key(&c.watch_id);
        let empty = !c.range_end.is_empty()
            && c.range_end.as_ref() != [0u8]
            && c.key.as_ref() >= c.range_end.as_ref();
        if taken || empty {
            let resp = pb::WatchResponse {
                header: Some(self.server.watch_header(self.hub.current_revision())),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: (if taken { DUPLICATE_ID } else { EMPTY_RANGE }).to_string(),
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let watch_id = match c.watch_id {
            0 => {
                while self.watchers.contains_key(&self.next_id) {
                    self.next_id += 1;
                }
                self.next_id += 1;
                self.next_id - 1
            }
            id => id,
        };
        let spec = WatchSpec {
            key: c.key.to_vec(),
            range_end: c.range_end.to_vec(),
            start_revision: c.start_revision,
            prev_kv: c.prev_kv,
            no_put: c
                .filters
                .contains(&(pb::watch_create_request::FilterType::Noput as i32)),
            no_delete: c
                .filters
                .contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
            tag: watch_id,
        };
        // `created` first: the hub may deliver as soon as the watcher is registered.
        let resp = pb::WatchResponse {
            header: Some(self.server.watch_header(self.hub.current_revision())),
            watch_id,
            created: true,
            ..Default::default()
        };
        self.send(resp).await?;
        let (hub_id, _) = self.hub.watch(spec, self.sink.clone());
        self.watchers.insert(watch_id, hub_id);
        if c.progress_notify {
            self.progress_ids.insert(watch_id);
            self.quiet.insert(watch_id);
        }
        if c.fragment {
            self.fragment_ids.insert(watch_id);
        }
        Ok(())
    }

    async fn on_batch(&mut self, batch: WatchBatch) -> Result<(), ()> {
        let header = self.server.watch_header(batch.revision);
        if let Some(tag) = batch.tag {
            if !self.watchers.contains_key(&tag) {
                return Ok(()); // canceled after the hub queued this
            }
            self.quiet.remove(&tag);
            if batch.compact_revision != 0 {
                self.watchers.remove(&tag);
                self.forget(tag);
            }
        }
        let fragment = batch.tag.is_some_and(|t| self.fragment_ids.contains(&t));
        let resp = batch_response(batch, header);
        if !fragment {
            return self.send(resp).await;
        }
        for part in fragments(resp, self.opts.fragment_bytes_max) {
            self.send(part).await?;
        }
        Ok(())
    }

    /// Answers a pending progress request if every watcher is synced (the hub queues the
    /// reply behind the events already queued, so it never overtakes one).
    fn try_progress(&mut self) {
        let ids: Vec<WatcherId> = self.watchers.values().copied().collect();
        if self.hub.request_progress(&ids, self.sink.as_ref()) {
            self.progress_pending = false;
        }
    }

    fn on_progress_tick(&mut self) {
        let ids: Vec<WatcherId> = self
            .quiet
            .iter()
            .filter_map(|t| self.watchers.get(t).copied())
            .collect();
        if !ids.is_empty() {
            self.hub.progress_notify(&ids);
        }
        self.quiet = self.progress_ids.clone();
    }
}
