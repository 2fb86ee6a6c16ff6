//! [`PeerMetrics`]: the peer-traffic metrics under etcd's `etcd_network_*` names (etcd's
//! `rafthttp/metrics.go`), labelled by the remote member's id in lowercase hex as etcd
//! prints ids (`To`, `From`, `Local`, `Remote`).
//!
//! The server owns one set inside [`super::Metrics`] and registers it; the peer transport
//! (`src/peer`) gets a clone through [`super::RaftInbox::peer_metrics`] and counts into it
//! from its tasks. Counting is lock-free apart from the label map's read lock; this file
//! never does IO.
//!
//! What is counted, as etcd counts it: bytes are the encoded size of each Raft message
//! (not of snapshot images, which etcd counts separately); a send failure is a message that
//! did not reach the wire (its peer's queue was full, or its connection failed).

use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::raft::NodeId;

/// One label: its etcd name and the member id in hex.
pub type IdLabel = [(&'static str, String); 1];

/// Two labels (`Local`, `Remote`).
pub type PairLabel = [(&'static str, String); 2];

/// Peer-traffic counters. Cheap to clone: clones count into the same metrics.
#[derive(Clone, Debug, Default)]
pub struct PeerMetrics {
    /// This member's id in hex, once the server knows it (the `Local` label).
    local: Arc<OnceLock<String>>,
    /// `etcd_network_peer_sent_bytes_total{To}`.
    sent_bytes: Family<IdLabel, Counter>,
    /// `etcd_network_peer_received_bytes_total{From}`.
    received_bytes: Family<IdLabel, Counter>,
    /// `etcd_network_peer_sent_failures_total{To}`.
    sent_failures: Family<IdLabel, Counter>,
    /// `etcd_network_active_peers{Local,Remote}`: 1 while a stream to the peer is open.
    active_peers: Family<PairLabel, Gauge>,
    /// `etcd_network_disconnected_peers_total{Local,Remote}`.
    disconnected_peers: Family<PairLabel, Counter>,
}

/// A member id as etcd prints it in labels and logs (`types.ID.String()`).
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

impl PeerMetrics {
    /// Registers every peer metric in `r` under etcd's names.
    pub(super) fn register(&self, r: &mut Registry) {
        // prometheus-client appends `_total` to counters and `.` to help texts.
        r.register(
            "etcd_network_peer_sent_bytes",
            "The total number of bytes sent to peers",
            self.sent_bytes.clone(),
        );
        r.register(
            "etcd_network_peer_received_bytes",
            "The total number of bytes received from peers",
            self.received_bytes.clone(),
        );
        r.register(
            "etcd_network_peer_sent_failures",
            "The total number of send failures from peers",
            self.sent_failures.clone(),
        );
        r.register(
            "etcd_network_active_peers",
            "The current number of active peer connections",
            self.active_peers.clone(),
        );
        r.register(
            "etcd_network_disconnected_peers",
            "The total number of disconnected peers",
            self.disconnected_peers.clone(),
        );
    }

    /// Records this member's id for the `Local` label (first call wins).
    pub(super) fn set_local(&self, member_id: u64) {
        let _ = self.local.set(id_hex(member_id));
    }

    /// `bytes` of Raft messages handed to the stream to `to`.
    pub fn sent(&self, to: NodeId, bytes: u64) {
        self.sent_bytes
            .get_or_create(&label("To", to))
            .inc_by(bytes);
    }

    /// `bytes` of Raft messages received from `from`.
    pub fn received(&self, from: NodeId, bytes: u64) {
        let counter = self.received_bytes.get_or_create(&label("From", from));
        counter.inc_by(bytes);
    }

    /// `messages` to `to` that never reached the wire.
    pub fn send_failed(&self, to: NodeId, messages: u64) {
        if messages > 0 {
            let counter = self.sent_failures.get_or_create(&label("To", to));
            counter.inc_by(messages);
        }
    }

    /// A stream to `remote` opened (`true`) or broke (`false`).
    pub fn peer_active(&self, remote: NodeId, active: bool) {
        let pair = self.pair(remote);
        self.active_peers
            .get_or_create(&pair)
            .set(i64::from(active));
        if !active {
            self.disconnected_peers.get_or_create(&pair).inc();
        }
    }

    fn pair(&self, remote: NodeId) -> PairLabel {
        let local = self.local.get().cloned().unwrap_or_default();
        [("Local", local), ("Remote", id_hex(remote.0))]
    }
}

fn label(name: &'static str, id: NodeId) -> IdLabel {
    [(name, id_hex(id.0))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_under_etcd_names_and_hex_labels() {
        let m = PeerMetrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        m.set_local(0xab);
        m.sent(NodeId(0x1f), 10);
        m.received(NodeId(0x1f), 7);
        m.send_failed(NodeId(0x1f), 2);
        m.peer_active(NodeId(0x1f), false);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for line in [
            "etcd_network_peer_sent_bytes_total{To=\"1f\"} 10",
            "etcd_network_peer_received_bytes_total{From=\"1f\"} 7",
            "etcd_network_peer_sent_failures_total{To=\"1f\"} 2",
            "etcd_network_active_peers{Local=\"ab\",Remote=\"1f\"} 0",
            "etcd_network_disconnected_peers_total{Local=\"ab\",Remote=\"1f\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
