//! Alarms (etcd's `Maintenance.Alarm`): NOSPACE when a member's backend passes the quota,
//! CORRUPT when members' hashes disagree. Raised and cleared through the log (an
//! `AlarmRequest` entry), so every member holds the same set; kept as MVCC app meta
//! (`alarm/<member id BE><type BE>`), so it survives restarts and ships in snapshots.
//!
//! [`AlarmSet`] is the in-memory mirror the request paths read (writes refuse with NOSPACE
//! while one is active, and with `corrupt cluster` while CORRUPT is, see `corrupt.rs`;
//! `/health` reports them); only the apply loop changes it, in the same batch as the app
//! meta. No gRPC, no Raft here.

use std::collections::BTreeSet;

use super::ServerError;
use crate::mvcc::{ApplyBatch, Backend, Store};
use crate::proto::etcdserverpb as pb;
use pb::alarm_request::AlarmAction;

const ALARM_PREFIX: &[u8] = b"alarm/";

/// The active alarms: (member id, `pb::AlarmType` as i32).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmSet {
    active: BTreeSet<(u64, i32)>,
}

fn meta_key(member: u64, alarm: i32) -> Vec<u8> {
    let mut key = ALARM_PREFIX.to_vec();
    key.extend_from_slice(&member.to_be_bytes());
    key.extend_from_slice(&alarm.to_be_bytes());
    key
}

impl AlarmSet {
    /// Reads the alarms recorded in `store`.
    pub fn load<B: Backend>(store: &Store<B>) -> Result<AlarmSet, ServerError> {
        let mut active = BTreeSet::new();
        for (key, _) in store.app_meta_scan(ALARM_PREFIX)? {
            let raw = &key[key.len().saturating_sub(12)..];
            if raw.len() == 12 {
                let member = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
                let alarm = i32::from_be_bytes(raw[8..].try_into().expect("4 bytes"));
                active.insert((member, alarm));
            }
        }
        Ok(AlarmSet { active })
    }

    /// Whether any member has raised `alarm`.
    pub fn has(&self, alarm: pb::AlarmType) -> bool {
        self.active.iter().any(|&(_, a)| a == alarm as i32)
    }

    /// Whether `member` has raised `alarm`.
    pub fn has_for(&self, member: u64, alarm: pb::AlarmType) -> bool {
        self.active.contains(&(member, alarm as i32))
    }

    /// Every active alarm, as the RPC lists them.
    pub fn list(&self) -> Vec<pb::AlarmMember> {
        self.active
            .iter()
            .map(|&(member_id, alarm)| pb::AlarmMember { member_id, alarm })
            .collect()
    }

    /// Applies a logged `AlarmRequest` (ACTIVATE or DEACTIVATE) into `batch` and this set;
    /// answers as etcd: the alarm raised, or the one cleared (nothing if it was not active).
    pub fn apply<B: Backend>(
        &mut self,
        batch: &mut ApplyBatch<'_, '_, B>,
        req: &pb::AlarmRequest,
    ) -> Vec<pb::AlarmMember> {
        let entry = (req.member_id, req.alarm);
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Activate) if req.alarm != pb::AlarmType::None as i32 => {
                if self.active.insert(entry) {
                    batch.put_app_meta(&meta_key(req.member_id, req.alarm), vec![1]);
                    tracing::warn!(
                        member = format!("{:x}", req.member_id),
                        alarm = req.alarm,
                        "alarm raised"
                    );
                }
                vec![pb::AlarmMember {
                    member_id: req.member_id,
                    alarm: req.alarm,
                }]
            }
            Ok(AlarmAction::Deactivate) => {
                if !self.active.remove(&entry) {
                    return Vec::new();
                }
                batch.delete_app_meta(&meta_key(req.member_id, req.alarm));
                tracing::info!(
                    member = format!("{:x}", req.member_id),
                    alarm = req.alarm,
                    "alarm cleared"
                );
                vec![pb::AlarmMember {
                    member_id: req.member_id,
                    alarm: req.alarm,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Removes every alarm record from `batch` (a restore starts a new cluster, whose
    /// member ids differ) and empties the set.
    pub fn clear<B: Backend>(&mut self, batch: &mut ApplyBatch<'_, '_, B>) {
        for (member, alarm) in std::mem::take(&mut self.active) {
            batch.delete_app_meta(&meta_key(member, alarm));
        }
    }
}

impl super::EtcdServer {
    /// The active alarms.
    pub fn alarms(&self) -> Vec<pb::AlarmMember> {
        let set = self
            .shared()
            .alarms
            .read()
            .unwrap_or_else(|e| e.into_inner());
        set.list()
    }

    /// `Maintenance.Alarm`: GET answers the active alarms (of `req.member_id`, or all when
    /// it is 0, filtered by type unless NONE); ACTIVATE / DEACTIVATE go through the log.
    pub async fn alarm(&self, req: pb::AlarmRequest) -> Result<pb::AlarmResponse, ServerError> {
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => self
                .alarms()
                .into_iter()
                .filter(|a| req.member_id == 0 || a.member_id == req.member_id)
                .filter(|a| req.alarm == 0 || a.alarm == req.alarm)
                .collect(),
            _ => match self
                .propose(crate::proto::raftkvpb::internal_request::Request::Alarm(
                    req,
                ))
                .await?
            {
                super::shared::Applied::Alarm(changed) => changed,
                other => unreachable!("an alarm applied as {other:?}"),
            },
        };
        Ok(pb::AlarmResponse {
            header: Some(self.header()),
            alarms,
        })
    }

    /// Status's `errors`: one `memberID:<id> alarm:<NAME> ` per active alarm (the text
    /// of etcd's `AlarmMember.String()`, trailing space included).
    pub fn alarm_errors(&self) -> Vec<String> {
        self.alarms()
            .into_iter()
            .map(|a| {
                let name = pb::AlarmType::try_from(a.alarm)
                    .map_or("UNKNOWN".to_string(), |t| t.as_str_name().to_string());
                format!("memberID:{} alarm:{name} ", a.member_id)
            })
            .collect()
    }

    /// The quota gate of Put and Txn-with-writes: refuses with NOSPACE while the alarm is
    /// active anywhere; when this member's backend has reached the quota, raises the alarm
    /// for it through the log first (as etcd's quota check does) and then refuses.
    pub(super) async fn check_space(&self) -> Result<(), ServerError> {
        let shared = self.shared();
        if shared.check_quota().is_ok() {
            return Ok(());
        }
        let me = shared.member_id;
        let raised = {
            let set = shared.alarms.read().unwrap_or_else(|e| e.into_inner());
            set.has_for(me, pb::AlarmType::Nospace)
        };
        if !raised {
            tracing::warn!(
                db_size_in_use_bytes = shared
                    .db_size_in_use_bytes
                    .load(std::sync::atomic::Ordering::SeqCst),
                quota_backend_bytes = shared.cfg.quota_backend_bytes,
                "backend quota exceeded: raising the NOSPACE alarm"
            );
            let activate = pb::AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: me,
                alarm: pb::AlarmType::Nospace as i32,
            };
            self.alarm(activate).await?;
        }
        Err(ServerError::NoSpace)
    }
}
