//! [`EtcdServer`]: the handle the API layer holds; cheap to clone.
//!
//! Writes are validated, encoded as `raftkvpb::InternalRequest` entries, queued for the
//! driver, and answered when the driver has applied them (after the local WAL fsync).
//! Linearizable reads wait for a ReadIndex round, then read the store; serializable reads
//! read it at once. Every wait is bounded by the request timeout. Dropping a returned
//! future abandons the wait only: a queued proposal may still be applied.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::oneshot;

use super::alarms::AlarmSet;
use super::convert;
use super::driver::Driver;
use super::inbox::Inbox;
use super::members::ExistingCluster;
use super::shared::{Applied, Input, Shared, INPUT_QUEUE_LEN, QUOTA_BACKEND_BYTES_DEFAULT};
use super::storage;
use super::transport::{RaftInbox, Transport};
use super::{Metrics, ServerConfig, ServerError, SERVER_VERSION};
use crate::lease::Lessor;
use crate::mvcc;
use crate::proto::etcdserverpb as pb;
use crate::proto::raftkvpb::{self, internal_request::Request};
use crate::raft::NodeId;

/// One running member. Cheap to clone (an `Arc` inside). All async methods are
/// cancel-safe from the caller's side: dropping the future abandons the wait, never the
/// proposal.
#[derive(Clone)]
pub struct EtcdServer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    driver: Mutex<Option<JoinHandle<()>>>,
}

impl EtcdServer {
    /// Opens (or creates) the data dir, recovers, tells `transport` about the peers, and
    /// starts the driver thread. Errors: `Config` (this member is not in the cluster, bad
    /// timeouts), `Storage`/`Mvcc` (the data dir cannot be opened or trusted).
    pub fn start(
        cfg: ServerConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<EtcdServer, ServerError> {
        EtcdServer::start_joining(cfg, transport, None)
    }

    /// [`EtcdServer::start`] for a member that may join a running cluster: `existing` is
    /// that cluster as a running member described it (see [`EtcdServer::needs_join`]);
    /// used only when the data dir is empty. Errors as `start`, and `Config` when this
    /// member is not in `existing`'s member list.
    pub fn start_joining(
        cfg: ServerConfig,
        transport: Arc<dyn Transport>,
        existing: Option<ExistingCluster>,
    ) -> Result<EtcdServer, ServerError> {
        let opened = storage::open(&cfg, existing.as_ref())?;
        let member_id = opened.member_id;
        super::reconfig::warn_if_even_voters(opened.meta.conf_state.voters.len());
        for m in opened.meta.members.values().filter(|m| m.id != member_id) {
            transport.set_peer(NodeId(m.id), m.peer_ur_ls.clone());
        }
        let (inputs, receiver) = sync_channel(INPUT_QUEUE_LEN);
        let applied = opened.store.applied_index();
        let alarms = AlarmSet::load(&opened.store)?;
        let mut lessor = Lessor::new(crate::lease::min_ttl_secs(cfg.election_timeout));
        super::lease_apply::rebuild(&mut lessor, &opened.store)?;
        let watch_hub = Arc::new(mvcc::WatchHub::new(opened.store.current_revision()));
        let shared = Arc::new(Shared {
            watch_hub,
            cluster_id: opened.meta.cluster_id,
            member_id,
            store: Mutex::new(Some(opened.store)),
            members: RwLock::new(opened.meta.members.clone()),
            inputs,
            term: AtomicU64::new(opened.raw.term().0),
            leader: AtomicU64::new(0),
            commit: AtomicU64::new(opened.raw.commit().0),
            applied: AtomicU64::new(applied),
            leaderless_since: Mutex::new(Some(Instant::now())),
            is_learner: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            removed_members: RwLock::new(opened.meta.removed.clone()),
            reconfig: tokio::sync::Mutex::new(()),
            defrag: Mutex::new(()),
            db_size_bytes: AtomicU64::new(0),
            db_size_in_use_bytes: AtomicU64::new(0),
            next_request_id: AtomicU64::new(first_request_id(member_id)),
            metrics: Metrics::new(),
            alarms: RwLock::new(alarms),
            lessor: Mutex::new(lessor),
            cfg,
        });
        let driver = Driver::new(
            shared.clone(),
            opened.raw,
            opened.wal,
            transport,
            receiver,
            opened.meta.members,
        );
        let handle = std::thread::Builder::new()
            .name(format!("raft-driver-{member_id:x}"))
            .spawn(move || driver.run())
            .map_err(|e| ServerError::Storage(format!("spawning the raft driver: {e}")))?;
        super::watch_feed::spawn(shared.clone())?;
        tracing::info!(
            member_id = format!("{member_id:x}"),
            cluster_id = format!("{:x}", shared.cluster_id),
            "raftkv member started"
        );
        Ok(EtcdServer {
            inner: Arc::new(Inner {
                shared,
                driver: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Whether `cfg` joins a running cluster and must first learn its members: state
    /// `existing` and no data in the data dir yet.
    pub fn needs_join(cfg: &ServerConfig) -> bool {
        cfg.initial_cluster_state == super::ClusterState::Existing
            && storage::is_fresh(&cfg.data_dir)
    }

    /// Completes once this member has applied its own removal from the cluster and its
    /// driver has stopped (the process should exit then, as etcd's does). Polls: nothing
    /// waits on it in a hot path.
    pub async fn removed(&self) {
        let s = self.shared();
        while !(s.removed.load(Ordering::SeqCst) && s.stopped.load(Ordering::SeqCst)) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The inbox to hand to the peer transport and the peer gRPC service.
    pub fn inbox(&self) -> Arc<dyn RaftInbox> {
        Arc::new(Inbox {
            shared: self.inner.shared.clone(),
        })
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.shared().member_id
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> u64 {
        self.shared().cluster_id
    }

    /// Range: linearizable (one ReadIndex round, shared with concurrent readers) unless
    /// `req.serializable`, which reads this member's state as it is.
    pub async fn range(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse, ServerError> {
        let mreq = convert::range_request(&req)?;
        mvcc::validate_range(&mreq)?;
        if !req.serializable && !self.shared().cfg.unsafe_test_stale_reads {
            self.linearizable_barrier().await?;
        }
        let resp = self.shared().store()?.range(&mreq)?;
        let header = self.shared().header(resp.revision);
        Ok(convert::range_response(resp, header))
    }

    /// Put through the log.
    pub async fn put(&self, req: pb::PutRequest) -> Result<pb::PutResponse, ServerError> {
        mvcc::validate_put(&convert::put_request(&req))?;
        self.check_space().await?;
        match self.propose(Request::Put(req)).await? {
            Applied::Put(r) => {
                let header = self.shared().header(r.revision);
                Ok(convert::put_response(r, header))
            }
            other => unreachable!("a put applied as {other:?}"),
        }
    }

    /// DeleteRange through the log.
    pub async fn delete_range(
        &self,
        req: pb::DeleteRangeRequest,
    ) -> Result<pb::DeleteRangeResponse, ServerError> {
        mvcc::validate_delete_range(&convert::delete_range_request(&req))?;
        match self.propose(Request::DeleteRange(req)).await? {
            Applied::DeleteRange(r) => {
                let header = self.shared().header(r.revision);
                Ok(convert::delete_range_response(r, header))
            }
            other => unreachable!("a delete applied as {other:?}"),
        }
    }

    /// Txn through the log.
    pub async fn txn(&self, req: pb::TxnRequest) -> Result<pb::TxnResponse, ServerError> {
        let mreq = convert::txn_request(&req)?;
        mvcc::validate_txn(&mreq, self.shared().cfg.max_txn_ops)?;
        if txn_is_read_only(&req) {
            return self.read_only_txn(&req, &mreq).await;
        }
        if txn_writes(&req) {
            self.check_space().await?;
        }
        match self.propose(Request::Txn(req)).await? {
            Applied::Txn(r) => {
                let header = self.shared().header(r.revision);
                Ok(convert::txn_response(r, header))
            }
            other => unreachable!("a txn applied as {other:?}"),
        }
    }

    /// A txn that writes nothing is a read (as in etcd): a ReadIndex round (skipped when
    /// every range in it is serializable), then evaluated on the local store. Nothing goes
    /// through the log.
    async fn read_only_txn(
        &self,
        req: &pb::TxnRequest,
        mreq: &mvcc::TxnRequest,
    ) -> Result<pb::TxnResponse, ServerError> {
        if !txn_is_serializable(req) && !self.shared().cfg.unsafe_test_stale_reads {
            self.linearizable_barrier().await?;
        }
        let mut store = self.shared().store()?;
        // A batch that writes nothing may be dropped without a commit.
        let resp = store.begin_apply()?.txn(mreq)?;
        drop(store);
        let header = self.shared().header(resp.revision);
        Ok(convert::txn_response(resp, header))
    }

    /// Compact through the log (logical; the driver removes old revisions in steps after).
    pub async fn compact(
        &self,
        req: pb::CompactionRequest,
    ) -> Result<pb::CompactionResponse, ServerError> {
        match self.propose(Request::Compaction(req)).await? {
            Applied::Compact(revision) => Ok(pb::CompactionResponse {
                header: Some(self.shared().header(revision)),
            }),
            other => unreachable!("a compaction applied as {other:?}"),
        }
    }

    /// The members this server knows, by id. The header has no revision (as etcd's).
    pub fn member_list(&self) -> pb::MemberListResponse {
        let header = self.shared().header(0);
        let members = self.shared().members.read().expect("members lock poisoned");
        pb::MemberListResponse {
            header: Some(header),
            members: members.values().cloned().collect(),
        }
    }

    /// Maintenance.Status.
    pub async fn status(&self) -> Result<pb::StatusResponse, ServerError> {
        let s = self.shared();
        let (size, revision) = {
            let store = s.store()?;
            (store.db_size()?, store.current_revision())
        };
        s.note_db_size(&size);
        Ok(pb::StatusResponse {
            header: Some(s.header(revision)),
            version: SERVER_VERSION.to_string(),
            db_size: size.db_size_bytes as i64,
            leader: s.leader.load(Ordering::SeqCst),
            raft_index: s.commit.load(Ordering::SeqCst),
            raft_term: s.term.load(Ordering::SeqCst),
            raft_applied_index: s.applied.load(Ordering::SeqCst),
            errors: self.alarm_errors(),
            db_size_in_use: size.db_size_in_use_bytes as i64,
            is_learner: s.is_learner.load(Ordering::SeqCst),
            storage_version: String::new(),
            db_size_quota: quota_bytes(s.cfg.quota_backend_bytes) as i64,
            downgrade_info: None,
        })
    }

    /// A response header: cluster id, member id, current revision, raft term.
    pub fn header(&self) -> pb::ResponseHeader {
        let revision = self.shared().store().map_or(0, |s| s.current_revision());
        self.shared().header(revision)
    }

    /// Whether this member is a learner (it then serves only Status and serializable
    /// Range to clients, as etcd's learners do; see `api::learner`).
    pub fn is_learner(&self) -> bool {
        self.shared().is_learner.load(Ordering::SeqCst)
    }

    /// The leader this member knows, if any.
    pub fn leader(&self) -> Option<u64> {
        self.shared().leader()
    }

    /// One ReadIndex round: Ok once this member has applied everything committed before
    /// the call (used by `/health` and linearizable reads).
    pub async fn linearizable_barrier(&self) -> Result<(), ServerError> {
        let s = self.shared();
        s.check_accepting()?;
        let (waiter, rx) = oneshot::channel();
        enqueue(s, Input::Read { waiter })?;
        match tokio::time::timeout(s.request_timeout(), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(s.timeout_error()),
        }
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared().metrics
    }

    /// Stops the driver (syncing the WAL and the store) and waits for it; later requests
    /// fail with `Stopped`. Idempotent.
    pub fn stop(&self) {
        let handle = self
            .inner
            .driver
            .lock()
            .expect("driver lock poisoned")
            .take();
        if let Some(handle) = handle {
            let _ = self.shared().inputs.send(Input::Stop);
            if handle.join().is_err() {
                tracing::error!("the raft driver panicked");
            }
        }
    }

    /// Encodes `request`, queues it for the driver and waits until it is applied.
    pub(super) async fn propose(&self, request: Request) -> Result<Applied, ServerError> {
        let s = self.shared();
        s.check_accepting()?;
        self.check_not_corrupt(&request)?;
        let id = s.next_request_id.fetch_add(1, Ordering::SeqCst);
        let entry = raftkvpb::InternalRequest {
            header: Some(raftkvpb::RequestHeader {
                id,
                ..Default::default()
            }),
            request: Some(request),
        };
        let data = entry.encode_to_vec();
        if data.len() > s.cfg.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        let (waiter, rx) = oneshot::channel();
        enqueue(
            s,
            Input::Propose {
                id,
                data: Bytes::from(data),
                waiter,
            },
        )?;
        match tokio::time::timeout(s.request_timeout(), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(s.timeout_error()),
        }
    }
}

/// Queues `input` without blocking: a full queue is `too many requests`.
pub(super) fn enqueue(s: &Shared, input: Input) -> Result<(), ServerError> {
    s.inputs.try_send(input).map_err(|e| match e {
        TrySendError::Full(_) => ServerError::TooManyRequests,
        TrySendError::Disconnected(_) => ServerError::Stopped,
    })
}

/// Request ids: the member id's low 16 bits, then a counter starting at the start time in
/// milliseconds (shifted), so ids of an earlier run still in the log do not collide.
fn first_request_id(member_id: u64) -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ((member_id & 0xffff) << 48) | ((ms << 8) & 0x0000_ffff_ffff_ffff)
}

/// The backend quota: etcd's 2 GiB default when 0.
pub(super) fn quota_bytes(configured: u64) -> u64 {
    if configured == 0 {
        QUOTA_BACKEND_BYTES_DEFAULT
    } else {
        configured
    }
}

/// Whether a txn contains a put anywhere (what the quota refuses, as etcd).
fn txn_is_read_only(req: &pb::TxnRequest) -> bool {
    use crate::proto::etcdserverpb::request_op::Request as Op;
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(_)) => true,
            Some(Op::RequestTxn(t)) => txn_is_read_only(t),
            _ => false,
        })
}

/// Whether every range in a read-only txn asked for a serializable read.
fn txn_is_serializable(req: &pb::TxnRequest) -> bool {
    use crate::proto::etcdserverpb::request_op::Request as Op;
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(r)) => r.serializable,
            Some(Op::RequestTxn(t)) => txn_is_serializable(t),
            _ => false,
        })
}

fn txn_writes(req: &pb::TxnRequest) -> bool {
    use crate::proto::etcdserverpb::request_op::Request as Op;
    req.success
        .iter()
        .chain(&req.failure)
        .any(|op| match &op.request {
            Some(Op::RequestPut(_)) => true,
            Some(Op::RequestTxn(t)) => txn_writes(t),
            _ => false,
        })
}
