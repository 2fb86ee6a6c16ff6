//! `Maintenance.MoveLeader`: the leader hands leadership to another voter (Raft's leader
//! transfer, paper §3.10) and answers once this member sees the transferee lead, as etcd:
//! `not leader` on a follower, `bad leader transferee` for a non-voter, and a timeout
//! error when the transfer does not finish within the request timeout.
//!
//! The transfer itself runs in the driver (`Input::TransferLeader`); this file only checks
//! and waits, polling the leader the driver publishes every Ready (as etcd polls).

use std::sync::mpsc::TrySendError;
use std::time::Instant;

use super::shared::Input;
use super::{EtcdServer, ServerError};
use crate::proto::etcdserverpb as pb;
use crate::raft::NodeId;

impl EtcdServer {
    /// Moves leadership to voter `target` (see the module doc).
    pub async fn move_leader(&self, target: u64) -> Result<pb::MoveLeaderResponse, ServerError> {
        let s = self.shared();
        if s.leader() != Some(s.member_id) {
            return Err(ServerError::NotLeader);
        }
        let is_voter = {
            let members = s.members.read().expect("members lock poisoned");
            members.get(&target).is_some_and(|m| !m.is_learner)
        };
        if !is_voter {
            return Err(ServerError::BadLeaderTransferee);
        }
        let deadline = Instant::now() + s.request_timeout();
        let mut last_ask = None::<Instant>;
        while s.leader() != Some(target) {
            if Instant::now() > deadline {
                return Err(ServerError::LeaderTransferTimeout);
            }
            // Ask again every election timeout: Raft drops a transfer that did not
            // finish within one.
            if last_ask.is_none_or(|t| t.elapsed() >= s.cfg.election_timeout) {
                match s.inputs.try_send(Input::TransferLeader(NodeId(target))) {
                    Ok(()) => last_ask = Some(Instant::now()),
                    Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => return Err(ServerError::Stopped),
                }
            }
            tokio::time::sleep(s.cfg.heartbeat_interval).await;
        }
        Ok(pb::MoveLeaderResponse {
            header: Some(self.header()),
        })
    }
}
