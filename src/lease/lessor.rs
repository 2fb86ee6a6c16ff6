//! [`Lessor`]: every lease of one member, the keys attached to each, and (while this
//! member leads) when each expires.
//!
//! Only the primary (the leader) keeps expiry instants; elsewhere a lease never expires
//! locally and waits for the leader's revoke through the log. On promotion every lease
//! gets `now + remaining` (the checkpointed remaining TTL, else the full TTL), so a new
//! leader never expires everything at once after a failover.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::mvcc::{Event, EventType};

/// Grant failures decided at apply time.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LeaseError {
    /// A lease with this id exists already.
    #[error("etcdserver: lease already exists")]
    Exists,
    /// No such lease.
    #[error("etcdserver: requested lease not found")]
    NotFound,
}

/// One lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The lease id.
    pub id: i64,
    /// The granted TTL in seconds (already raised to the minimum).
    pub ttl_secs: i64,
    /// The remaining TTL of the last checkpoint, seconds (0: none).
    pub remaining_secs: i64,
    /// When it expires; `None` unless this member is primary.
    expiry: Option<Instant>,
    /// The keys attached to it.
    pub keys: BTreeSet<Vec<u8>>,
}

/// What LeaseTimeToLive reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    /// Seconds left (the granted TTL when this member does not track expiry).
    pub remaining_secs: i64,
    /// The granted TTL.
    pub granted_secs: i64,
    /// Attached keys, sorted.
    pub keys: Vec<Vec<u8>>,
}

/// The leases of one member.
#[derive(Debug)]
pub struct Lessor {
    leases: BTreeMap<i64, Lease>,
    min_ttl_secs: i64,
    primary: bool,
    /// Leases whose revoke the leader proposed, and when (not proposed again too soon).
    revoking: HashMap<i64, Instant>,
}

impl Lessor {
    /// An empty lessor granting at least `min_ttl_secs`.
    pub fn new(min_ttl_secs: i64) -> Lessor {
        Lessor {
            leases: BTreeMap::new(),
            min_ttl_secs,
            primary: false,
            revoking: HashMap::new(),
        }
    }

    /// The granted TTL for a requested one (raised to the minimum).
    pub fn granted_ttl(&self, requested_secs: i64) -> i64 {
        requested_secs.max(self.min_ttl_secs)
    }

    /// Grants lease `id` (applied from the log). Returns the granted TTL.
    pub fn grant(&mut self, id: i64, ttl_secs: i64, now: Instant) -> Result<i64, LeaseError> {
        if self.leases.contains_key(&id) {
            return Err(LeaseError::Exists);
        }
        let ttl = self.granted_ttl(ttl_secs);
        let expiry = self.primary.then(|| now + secs(ttl));
        self.leases.insert(
            id,
            Lease {
                id,
                ttl_secs: ttl,
                remaining_secs: 0,
                expiry,
                keys: BTreeSet::new(),
            },
        );
        Ok(ttl)
    }

    /// Restores a persisted lease (recovery; not a grant: no minimum applied again).
    pub fn restore(&mut self, id: i64, ttl_secs: i64, remaining_secs: i64, now: Instant) {
        let left = if remaining_secs > 0 {
            remaining_secs
        } else {
            ttl_secs
        };
        let expiry = self.primary.then(|| now + secs(left));
        self.leases.insert(
            id,
            Lease {
                id,
                ttl_secs,
                remaining_secs,
                expiry,
                keys: BTreeSet::new(),
            },
        );
    }

    /// Forgets every lease (before a rebuild from an installed snapshot).
    pub fn clear(&mut self) {
        self.leases.clear();
        self.revoking.clear();
    }

    /// Whether lease `id` exists.
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// The lease `id`, if any.
    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Removes lease `id` (applied revoke), returning it with its keys.
    pub fn revoke(&mut self, id: i64) -> Result<Lease, LeaseError> {
        self.revoking.remove(&id);
        self.leases.remove(&id).ok_or(LeaseError::NotFound)
    }

    /// Records a checkpoint of lease `id`'s remaining TTL (applied from the log).
    pub fn checkpoint(&mut self, id: i64, remaining_secs: i64) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.remaining_secs = remaining_secs;
        }
    }

    /// Renews lease `id` on the primary: expiry = now + TTL. Returns the TTL, or `None`
    /// when the lease is unknown or already expired (its revoke is on its way).
    pub fn renew(&mut self, id: i64, now: Instant) -> Option<i64> {
        let l = self.leases.get_mut(&id)?;
        if l.expiry.is_some_and(|e| e <= now) {
            return None;
        }
        l.remaining_secs = 0;
        if self.primary {
            l.expiry = Some(now + secs(l.ttl_secs));
        }
        Some(l.ttl_secs)
    }

    /// Time left and attached keys of lease `id`.
    pub fn time_to_live(&self, id: i64, now: Instant) -> Option<TimeToLive> {
        let l = self.leases.get(&id)?;
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(now).as_secs() as i64,
            None if l.remaining_secs > 0 => l.remaining_secs,
            None => l.ttl_secs,
        };
        Some(TimeToLive {
            remaining_secs: remaining,
            granted_secs: l.ttl_secs,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Every lease id, ascending.
    pub fn ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// Attaches `key` to lease `id` (ignored for an unknown lease or id 0).
    pub fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    /// Detaches `key` from lease `id`.
    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }

    /// Follows a committed batch's events: a put moves its key from the previous lease to
    /// its new one; a delete detaches it.
    pub fn apply_events(&mut self, events: &[Event]) {
        for ev in events {
            let key = &ev.kv.key;
            if let Some(prev) = ev.prev_kv.as_ref().filter(|p| p.lease != 0) {
                self.detach(prev.lease, key);
            }
            if ev.kind == EventType::Put && ev.kv.lease != 0 {
                self.attach(ev.kv.lease, key);
            }
        }
    }

    /// Whether this member tracks expiry (it leads).
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// Becomes primary: every lease expires `remaining` (checkpointed, else full TTL)
    /// from now.
    pub fn promote(&mut self, now: Instant) {
        self.primary = true;
        self.revoking.clear();
        for l in self.leases.values_mut() {
            let left = if l.remaining_secs > 0 {
                l.remaining_secs
            } else {
                l.ttl_secs
            };
            l.expiry = Some(now + secs(left));
        }
    }

    /// Stops being primary: no lease expires here any more.
    pub fn demote(&mut self) {
        self.primary = false;
        self.revoking.clear();
        for l in self.leases.values_mut() {
            l.expiry = None;
        }
    }

    /// Leases the primary must revoke now: expired, and not proposed within `retry`.
    /// Marks them as proposed at `now`.
    pub fn expired(&mut self, now: Instant, retry: Duration, max: usize) -> Vec<i64> {
        let mut out = Vec::new();
        for l in self.leases.values() {
            if out.len() >= max {
                break;
            }
            if l.expiry.is_none_or(|e| e > now) {
                continue;
            }
            if self
                .revoking
                .get(&l.id)
                .is_some_and(|&t| now.duration_since(t) < retry)
            {
                continue;
            }
            out.push(l.id);
        }
        for id in &out {
            self.revoking.insert(*id, now);
        }
        out
    }

    /// Remaining TTLs of the primary's leases, for a checkpoint: `(id, remaining_secs)`
    /// for each lease whose remaining time is below its TTL.
    pub fn checkpoints(&self, now: Instant) -> Vec<(i64, i64)> {
        self.leases
            .values()
            .filter_map(|l| {
                let left = l.expiry?.saturating_duration_since(now).as_secs() as i64;
                (left < l.ttl_secs).then_some((l.id, left.max(1)))
            })
            .collect()
    }

    /// Asserts the lessor's invariants: ids are keys, TTLs positive, expiry only on the
    /// primary.
    pub fn check_invariants(&self) {
        for (id, l) in &self.leases {
            assert_eq!(*id, l.id, "lease stored under another id");
            assert!(l.ttl_secs > 0, "lease {id} has TTL {}", l.ttl_secs);
            assert!(
                self.primary || l.expiry.is_none(),
                "lease {id} has an expiry on a non-primary member"
            );
        }
    }
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::KeyValue;

    fn kv(key: &str, lease: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            lease,
            ..Default::default()
        }
    }

    #[test]
    fn grant_raises_to_the_minimum_and_refuses_duplicates() {
        let now = Instant::now();
        let mut l = Lessor::new(2);
        assert_eq!(l.grant(1, 1, now), Ok(2));
        assert_eq!(l.grant(2, 10, now), Ok(10));
        assert_eq!(l.grant(1, 10, now), Err(LeaseError::Exists));
        assert_eq!(l.ids(), vec![1, 2]);
        l.check_invariants();
    }

    #[test]
    fn only_the_primary_expires_and_promotion_restarts_the_clock() {
        let t0 = Instant::now();
        let mut l = Lessor::new(1);
        l.grant(1, 5, t0).unwrap();
        let later = t0 + Duration::from_secs(60);
        assert!(l.expired(later, Duration::from_secs(1), 10).is_empty());
        l.promote(later);
        assert!(l
            .expired(later + Duration::from_secs(4), Duration::from_secs(1), 10)
            .is_empty());
        let due = later + Duration::from_secs(5);
        assert_eq!(l.expired(due, Duration::from_secs(1), 10), vec![1]);
        assert!(
            l.expired(due, Duration::from_secs(1), 10).is_empty(),
            "not re-proposed at once"
        );
        assert_eq!(l.renew(1, due), None, "an expired lease is not renewed");
        l.demote();
        l.check_invariants();
    }

    #[test]
    fn checkpointed_remaining_ttl_is_what_a_new_primary_counts_from() {
        let t0 = Instant::now();
        let mut l = Lessor::new(1);
        l.grant(1, 100, t0).unwrap();
        l.checkpoint(1, 3);
        l.promote(t0);
        assert_eq!(l.time_to_live(1, t0).unwrap().remaining_secs, 3);
        assert_eq!(l.renew(1, t0), Some(100));
        assert_eq!(l.time_to_live(1, t0).unwrap().remaining_secs, 100);
    }

    #[test]
    fn events_attach_move_and_detach_keys() {
        let now = Instant::now();
        let mut l = Lessor::new(1);
        l.grant(1, 10, now).unwrap();
        l.grant(2, 10, now).unwrap();
        let put = |k, lease, prev: Option<KeyValue>| Event {
            kind: EventType::Put,
            kv: kv(k, lease),
            prev_kv: prev,
        };
        l.apply_events(&[put("a", 1, None), put("b", 1, None)]);
        assert_eq!(l.get(1).unwrap().keys.len(), 2);
        l.apply_events(&[put("a", 2, Some(kv("a", 1)))]);
        assert_eq!(l.time_to_live(1, now).unwrap().keys, vec![b"b".to_vec()]);
        assert_eq!(l.time_to_live(2, now).unwrap().keys, vec![b"a".to_vec()]);
        l.apply_events(&[Event {
            kind: EventType::Delete,
            kv: kv("b", 0),
            prev_kv: Some(kv("b", 1)),
        }]);
        assert!(l.get(1).unwrap().keys.is_empty());
        assert_eq!(l.revoke(2).unwrap().keys.len(), 1);
        assert_eq!(l.revoke(2).unwrap_err(), LeaseError::NotFound);
    }
}
