//! The state the driver thread shares with [`super::EtcdServer`] handles and the inbox:
//! the store (behind a mutex), the membership view, the Raft status mirrored into atomics,
//! and the driver's bounded input queue.
//!
//! Lock order: never hold two of `store`, `members`, `removed_members`, `leaderless_since`
//! at once, except `store` then `lessor`; none is ever held across an `.await` or while
//! sending into `inputs`. `defrag` comes before `store` (a defrag holds it throughout and
//! takes the store lock briefly, several times); `reconfig` (async) is held across the
//! awaits of one membership request and before any of the others.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::alarms::AlarmSet;
use super::{Metrics, ServerConfig, ServerError};
use crate::mvcc::{self, SledBackend, Store};
use crate::proto::etcdserverpb as pb;
use crate::raft::{Message, NodeId};

/// The store type the server runs on.
pub type KvStore = Store<SledBackend>;

/// How many inputs may wait for the driver before proposals are refused with
/// `too many requests` and peer messages are dropped.
pub const INPUT_QUEUE_LEN: usize = 8192;

/// etcd's default backend quota (`--quota-backend-bytes 0`): 2 GiB.
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 << 30;

/// The committed-but-unapplied gap above which proposals are refused (etcd's 5000).
pub const APPLY_GAP_MAX: u64 = 5000;

/// The outcome of applying one proposal, sent to the member that proposed it.
#[derive(Debug)]
pub enum Applied {
    /// A Put's response.
    Put(mvcc::PutResponse),
    /// A DeleteRange's response.
    DeleteRange(mvcc::DeleteRangeResponse),
    /// A Txn's response.
    Txn(mvcc::TxnResponse),
    /// A compaction; the store revision after it.
    Compact(i64),
    /// A member attribute update (publishing client URLs).
    MemberAttr,
    /// A membership change (MemberAdd/Remove/Promote/Update): the members after it.
    Members(Vec<pb::Member>),
    /// An alarm raised or cleared: the alarms it changed.
    Alarm(Vec<pb::AlarmMember>),
    /// A lease granted: its id and granted TTL in seconds.
    LeaseGrant {
        /// The lease id.
        id: i64,
        /// The granted TTL.
        ttl: i64,
    },
    /// A lease revoked; the store revision after it.
    LeaseRevoke(i64),
    /// Remaining TTLs recorded.
    LeaseCheckpoint,
}

/// Where the result of a proposal goes.
pub type ApplyWaiter = oneshot::Sender<Result<Applied, ServerError>>;

/// Everything the driver thread takes in, in arrival order.
pub enum Input {
    /// Propose an encoded `InternalRequest` whose header id is `id`.
    Propose {
        id: u64,
        data: Bytes,
        waiter: ApplyWaiter,
    },
    /// Join the next ReadIndex round; answered once applied up to its read index.
    Read {
        waiter: oneshot::Sender<Result<(), ServerError>>,
    },
    /// A message from a peer.
    Step(Message),
    /// An InstallSnapshot whose image the inbox has already installed into the store.
    StepInstalled(Message),
    /// The transport could not reach a peer.
    Unreachable(NodeId),
    /// A snapshot transfer to a peer finished.
    SnapshotReport(NodeId, bool),
    /// Hand leadership to this voter (MoveLeader; ignored unless leader).
    TransferLeader(NodeId),
    /// Propose a membership change whose `MemberContext.request_id` is `id`; answered
    /// when applied. With `promote`, only the leader takes it, and only for a learner in
    /// sync with its log (see `reconfig.rs`).
    ConfChange {
        id: u64,
        cc: crate::raft::ConfChange,
        promote: bool,
        waiter: ApplyWaiter,
    },
    /// Stop the driver (sent by `EtcdServer::stop`).
    Stop,
}

/// Shared between the driver, the handles and the inbox.
pub struct Shared {
    /// The configuration the server started with.
    pub cfg: ServerConfig,
    /// The cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The store; `None` once stopped. The driver writes it, handles read it.
    pub store: Mutex<Option<KvStore>>,
    /// Member records by id (refreshed by the driver after membership changes).
    pub members: RwLock<BTreeMap<u64, pb::Member>>,
    /// The driver's input queue.
    pub inputs: SyncSender<Input>,
    /// Raft term, as of the driver's last Ready.
    pub term: AtomicU64,
    /// Known leader (0 = none).
    pub leader: AtomicU64,
    /// Raft commit index.
    pub commit: AtomicU64,
    /// Applied index.
    pub applied: AtomicU64,
    /// When the leader was last lost (or the server started); `None` while one is known.
    pub leaderless_since: Mutex<Option<Instant>>,
    /// Whether this member is a learner.
    pub is_learner: AtomicBool,
    /// Set once the driver has stopped.
    pub stopped: AtomicBool,
    /// Set when this member applied its own removal, or a peer refused its messages as
    /// those of a removed member (it stops itself shortly after).
    pub removed: AtomicBool,
    /// Ids of members removed at runtime (their peer messages are refused).
    pub removed_members: RwLock<std::collections::BTreeSet<u64>>,
    /// Held by a membership request from its checks until its change is applied, so that
    /// requests through this member never check against a view a concurrent one is about
    /// to change (the apply-time check in `reconfig.rs` covers the rest).
    pub reconfig: tokio::sync::Mutex<()>,
    /// Held by a defragmentation from start to switch (on a blocking thread): a second
    /// Defragment (an etcdctl retry after its 5 s timeout) waits instead of copying beside
    /// it and then redoing the copy under the store lock.
    pub defrag: Mutex<()>,
    /// Backend size as last measured by the driver (about once a second).
    pub db_size_bytes: AtomicU64,
    /// Bytes of live backend entries as last measured (what the quota is checked against).
    pub db_size_in_use_bytes: AtomicU64,
    /// The next proposal id.
    pub next_request_id: AtomicU64,
    /// Metrics.
    pub metrics: Metrics,
    /// The active alarms (changed by the apply loop only).
    pub alarms: RwLock<AlarmSet>,
    /// The watchers (fed by the apply path; see `watch_feed.rs`).
    pub watch_hub: std::sync::Arc<mvcc::WatchHub>,
    /// The leases. Lock order: `store` before `lessor` when both are needed; the apply
    /// path locks it briefly per request while holding the store.
    pub lessor: Mutex<crate::lease::Lessor>,
}

impl Shared {
    /// Mirrors a freshly measured backend size into the quota check and the metrics.
    pub fn note_db_size(&self, size: &mvcc::DbSize) {
        self.db_size_bytes
            .store(size.db_size_bytes, Ordering::SeqCst);
        self.db_size_in_use_bytes
            .store(size.db_size_in_use_bytes, Ordering::SeqCst);
        self.metrics.db_total_size.set(size.db_size_bytes as i64);
        self.metrics
            .db_total_size_in_use
            .set(size.db_size_in_use_bytes as i64);
    }

    /// Locks the store, or `Stopped` after the driver has released it.
    pub fn store(&self) -> Result<StoreGuard<'_>, ServerError> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(ServerError::Stopped);
        }
        // A panic while holding the lock stops the driver (see `driver::MarkStopped`);
        // the flag above answers from then on, so the poison itself carries no news.
        let guard = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(ServerError::Stopped);
        }
        Ok(StoreGuard(guard))
    }

    /// How long to wait for a proposal or read (etcd: 5 s + 2 election timeouts).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.cfg.election_timeout
    }

    /// The known leader, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader.load(Ordering::SeqCst)).filter(|&l| l != 0)
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.term.load(Ordering::SeqCst),
        }
    }

    /// Refuses new work fast: stopped, no leader for an election timeout, or too far
    /// behind on applying.
    pub fn check_accepting(&self) -> Result<(), ServerError> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(ServerError::Stopped);
        }
        let since = *self.leaderless_since.lock().expect("leader lock poisoned");
        if since.is_some_and(|t| t.elapsed() >= self.cfg.election_timeout) {
            return Err(ServerError::NoLeader);
        }
        let commit = self.commit.load(Ordering::SeqCst);
        let applied = self.applied.load(Ordering::SeqCst);
        if commit.saturating_sub(applied) > APPLY_GAP_MAX {
            return Err(ServerError::TooManyRequests);
        }
        Ok(())
    }

    /// Refuses writes that could grow the backend while a NOSPACE alarm is active anywhere
    /// in the cluster or this member's backend has reached the quota (the caller raises the
    /// alarm then); deletes and compactions stay allowed.
    pub fn check_quota(&self) -> Result<(), ServerError> {
        let quota = match self.cfg.quota_backend_bytes {
            0 => QUOTA_BACKEND_BYTES_DEFAULT,
            q => q,
        };
        let nospace = pb::AlarmType::Nospace;
        let alarms = self.alarms.read().unwrap_or_else(PoisonError::into_inner);
        // The quota counts live entries, not sled's files: those also hold its
        // log-structured garbage and preallocated segments, which neither compaction nor
        // defrag reliably gives back (see docs/operations.md).
        let in_use = self.db_size_in_use_bytes.load(Ordering::SeqCst);
        if alarms.has(nospace) || in_use >= quota {
            return Err(ServerError::NoSpace);
        }
        Ok(())
    }

    /// The error for a wait that ran out of time.
    pub fn timeout_error(&self) -> ServerError {
        if self.stopped.load(Ordering::SeqCst) {
            ServerError::Stopped
        } else if self.leader().is_none() {
            ServerError::NoLeader
        } else {
            ServerError::Timeout
        }
    }
}

/// A locked, running store.
pub struct StoreGuard<'a>(MutexGuard<'a, Option<KvStore>>);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = KvStore;
    fn deref(&self) -> &KvStore {
        self.0.as_ref().expect("checked when locked")
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut KvStore {
        self.0.as_mut().expect("checked when locked")
    }
}
