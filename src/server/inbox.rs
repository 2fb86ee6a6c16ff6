//! [`Inbox`]: the server's [`RaftInbox`], what the peer transport delivers into.
//!
//! Messages are queued for the driver without blocking (dropped when the queue is full:
//! Raft retransmits). A snapshot image is installed into the store right here, on the
//! transport's blocking thread, under the store lock; only then is its InstallSnapshot
//! message stepped, so Raft never believes in state the store does not have.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;

use super::shared::{Input, Shared};
use super::transport::RaftInbox;
use super::{PeerMetrics, ServerError};
use crate::mvcc::MvccError;
use crate::raft::{Message, MessageKind, NodeId};

/// The server side of the peer transport.
pub struct Inbox {
    pub(super) shared: Arc<Shared>,
}

impl RaftInbox for Inbox {
    fn cluster_id(&self) -> u64 {
        self.shared.cluster_id
    }

    fn is_removed(&self, id: NodeId) -> bool {
        let removed = self
            .shared
            .removed_members
            .read()
            .expect("removed lock poisoned");
        removed.contains(&id.0)
    }

    fn report_removed(&self) {
        if !self.shared.removed.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "a peer refused this member's messages: it was removed from the cluster"
            );
        }
    }

    fn members(&self) -> Vec<crate::proto::etcdserverpb::Member> {
        let members = self.shared.members.read().expect("members lock poisoned");
        members.values().cloned().collect()
    }

    fn step(&self, msg: Message) {
        let _ = self.shared.inputs.try_send(Input::Step(msg));
    }

    fn install_snapshot(&self, msg: Message, image: &mut dyn Read) -> Result<(), ServerError> {
        let Some(snapshot) = msg
            .snapshot
            .as_ref()
            .filter(|_| msg.kind == MessageKind::InstallSnapshot)
        else {
            return Err(ServerError::InvalidSnapshot(
                "not an InstallSnapshot message".into(),
            ));
        };
        let index = snapshot.metadata.index.0;
        {
            let mut store = self.shared.store()?;
            // The image is at least as new as `index`; an older-or-equal index means the
            // store already holds everything it could bring.
            if index > store.applied_index() {
                let m = &self.shared.metrics;
                m.snapshot_apply_in_progress.set(1);
                let started = std::time::Instant::now();
                let installed = store.install_snapshot(image);
                m.snapshot_apply_in_progress.set(0);
                installed.map_err(|e| match e {
                    MvccError::InvalidSnapshot(why) => ServerError::InvalidSnapshot(why),
                    other => ServerError::Mvcc(other),
                })?;
                m.snap_db_save_duration
                    .observe(started.elapsed().as_secs_f64());
                let applied = store.applied_index();
                self.shared.applied.fetch_max(applied, Ordering::SeqCst);
                let alarms = super::alarms::AlarmSet::load(&store)?;
                *self
                    .shared
                    .alarms
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = alarms;
                tracing::info!(
                    from = msg.from.0,
                    index,
                    applied,
                    "installed snapshot image"
                );
            }
        }
        self.shared
            .inputs
            .send(Input::StepInstalled(msg))
            .map_err(|_| ServerError::Stopped)
    }

    fn report_unreachable(&self, id: NodeId) {
        let _ = self.shared.inputs.try_send(Input::Unreachable(id));
    }

    fn peer_metrics(&self) -> PeerMetrics {
        self.shared.metrics.peer.clone()
    }

    fn report_snapshot(&self, id: NodeId, ok: bool) {
        // Never dropped: until it hears the outcome the leader sends this peer nothing
        // but heartbeats. Never blocks the caller either (it may be an async task): a full
        // queue hands the report to a short-lived thread that waits for room.
        match self.shared.inputs.try_send(Input::SnapshotReport(id, ok)) {
            Err(TrySendError::Full(report)) => {
                let inputs = self.shared.inputs.clone();
                std::thread::spawn(move || {
                    let _ = inputs.send(report);
                });
            }
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}
