//! The simulated cluster: nodes, the network between them, the clock, and the invariant
//! checker, driven one event at a time.
//!
//! Every public method is one event (deliver a message, tick, propose, crash, ...). After
//! each event the driver calls [`Cluster::check_invariants`]. With `sync_at_once` the
//! cluster finishes every Ready as soon as it takes it (golden scripts, benches); without,
//! Readys stay outstanding until [`Cluster::finish_ready`] so that the random driver can
//! crash a node between its writes and its fsync. Membership follows the log: a node named
//! by an applied `AddLearner`/`AddVoter` starts, and one named by an applied `RemoveNode`
//! stops for good. The cluster has no randomness of its own beyond the seeded network.
//! Called by `sim::chaos`, `sim::script`, tests and benches.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::format;
use super::history::History;
use super::network::Network;
use super::node::{Report, SimNode};
use crate::raft::{
    ConfChange, ConfChangeKind, ConfState, Config, Error, MessageKind, NodeId, Role,
};

/// Settings of a simulated cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Seeds the network's faults and every node's election timer.
    pub seed: u64,
    /// See [`Config::election_timeout_ticks`].
    pub election_timeout_ticks: u32,
    /// See [`Config::heartbeat_interval_ticks`].
    pub heartbeat_interval_ticks: u32,
    /// See [`Config::pre_vote`].
    pub pre_vote: bool,
    /// See [`Config::check_quorum`].
    pub check_quorum: bool,
    /// See [`Config::msg_bytes_max`].
    pub msg_bytes_max: u64,
    /// See [`Config::inflight_msgs_max`].
    pub inflight_msgs_max: usize,
    /// Each application snapshots itself every this many applied entries (0: never).
    pub compact_every: u64,
    /// Keep every applied entry in the state machine (for printing).
    pub record_applied: bool,
    /// Finish each Ready right after taking it (no window for a crash before fsync).
    pub sync_at_once: bool,
    /// Record a text line per event in [`Cluster::trace`].
    pub trace: bool,
    /// Keep the history and check invariants against it (off only for benchmarks).
    pub check_history: bool,
}

impl ClusterConfig {
    /// etcd-like defaults for `seed`: election 10 ticks, heartbeat 1, pre-vote and
    /// check-quorum on, 1 MiB per message and 256 in flight, no compaction, Readys
    /// finished at once, no trace, history checked.
    pub fn new(seed: u64) -> ClusterConfig {
        ClusterConfig {
            seed,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            msg_bytes_max: 1024 * 1024,
            inflight_msgs_max: 256,
            compact_every: 0,
            record_applied: false,
            sync_at_once: true,
            trace: false,
            check_history: true,
        }
    }
}

/// A cluster of simulated nodes.
pub struct Cluster {
    /// Its settings.
    pub config: ClusterConfig,
    /// Every node ever started, removed ones included.
    pub nodes: BTreeMap<NodeId, SimNode>,
    /// The network.
    pub net: Network,
    /// The invariant checker.
    pub history: History,
    /// The seeded RNG for the network and for crash survivors.
    pub rng: StdRng,
    /// Logical time.
    pub now_ticks: u64,
    /// Events so far (each followed by an invariant check).
    pub steps: u64,
    /// Event lines, when tracing.
    pub trace: Vec<String>,
    /// Snapshots from a leader installed by followers (coverage counter).
    pub snapshots_installed: u64,
}

impl Cluster {
    /// An empty cluster.
    pub fn new(config: ClusterConfig) -> Cluster {
        let rng = StdRng::seed_from_u64(config.seed);
        let mut history = History::default();
        history.off = !config.check_history;
        Cluster {
            config,
            nodes: BTreeMap::new(),
            net: Network::default(),
            history,
            rng,
            now_ticks: 0,
            steps: 0,
            trace: Vec::new(),
            snapshots_installed: 0,
        }
    }

    /// Starts nodes `1..=count` as the voters of a brand-new cluster.
    pub fn bootstrap(&mut self, count: u64) {
        assert!(self.nodes.is_empty(), "bootstrap on a running cluster");
        let voters = (1..=count).map(NodeId).collect();
        let cs = ConfState {
            voters,
            learners: Default::default(),
        };
        for id in 1..=count {
            self.start_node(NodeId(id), cs.clone());
        }
    }

    fn start_node(&mut self, id: NodeId, conf_state: ConfState) {
        let mut config = Config::new(id);
        config.election_timeout_ticks = self.config.election_timeout_ticks;
        config.heartbeat_interval_ticks = self.config.heartbeat_interval_ticks;
        config.pre_vote = self.config.pre_vote;
        config.check_quorum = self.config.check_quorum;
        config.msg_bytes_max = self.config.msg_bytes_max;
        config.inflight_msgs_max = self.config.inflight_msgs_max;
        config.seed = self.config.seed.wrapping_mul(1_000_003).wrapping_add(id.0);
        let c = &self.config;
        let node = SimNode::start(config, conf_state, c.compact_every, c.record_applied);
        self.nodes.insert(id, node);
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.config.trace {
            self.trace.push(line());
        }
    }

    /// The node `id`; panics when there is none (a bug in the script or driver).
    pub fn node(&mut self, id: NodeId) -> &mut SimNode {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Ids of nodes that are up.
    pub fn up_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_up())
            .map(|n| n.id)
            .collect()
    }

    /// Ids of nodes that are down but not removed (they may restart).
    pub fn down_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| !n.is_up() && !n.removed)
            .map(|n| n.id)
            .collect()
    }

    /// Ids of nodes with a Ready waiting for its fsync.
    pub fn busy_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_busy())
            .map(|n| n.id)
            .collect()
    }

    /// The up node that leads the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        let leaders = self.nodes.values().filter_map(|n| {
            let raw = n.raw.as_ref()?;
            (raw.role() == Role::Leader).then(|| (raw.term(), n.id))
        });
        leaders.max().map(|(_, id)| id)
    }

    /// Takes (and with `sync_at_once` finishes) Readys of `id` until it has none or one is
    /// outstanding.
    pub fn drive(&mut self, id: NodeId) {
        loop {
            let node = self
                .nodes
                .get_mut(&id)
                .unwrap_or_else(|| panic!("no node {id}"));
            if !node.is_idle() {
                return;
            }
            node.flush_reports();
            if !node.raw().has_ready() {
                return;
            }
            let (soft, messages) = node.begin_ready(&mut self.history);
            if let Some(ss) = soft {
                let term = self.node(id).raw().term();
                let lead = ss.leader.map_or("none".to_string(), |l| l.to_string());
                self.note(|| format!("node {id}: {:?} term={term} leader={lead}", ss.role));
            }
            self.send(messages);
            if !self.config.sync_at_once {
                return;
            }
            self.finish_ready_of(id);
        }
    }

    /// Finishes the outstanding Ready of `id` (its fsync completes), then drives it on.
    pub fn finish_ready(&mut self, id: NodeId) {
        self.finish_ready_of(id);
        self.drive(id);
    }

    fn finish_ready_of(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("finishing an unknown node");
        let done = node.finish_ready(&mut self.history);
        if let Some(meta) = &done.restored {
            self.snapshots_installed += 1;
            self.note(|| format!("node {id}: restored snapshot {}/{}", meta.index, meta.term));
        }
        if !done.applied.is_empty() {
            self.note(|| format!("node {id}: applied {}", format::entries(&done.applied)));
        }
        for rs in &done.reads {
            self.note(|| {
                format!(
                    "node {id}: read {} served at index {}",
                    format::quoted(&rs.context),
                    rs.index
                )
            });
        }
        self.send(done.messages);
        for cc in done.conf_changes {
            self.on_conf_change_applied(id, &cc);
        }
    }

    fn on_conf_change_applied(&mut self, by: NodeId, cc: &ConfChange) {
        match cc.kind {
            ConfChangeKind::AddLearner | ConfChangeKind::AddVoter => {
                if !self.nodes.contains_key(&cc.node) {
                    let cs = self.node(by).app.conf_state.clone();
                    self.start_node(cc.node, cs);
                    self.note(|| format!("node {}: started", cc.node));
                }
            }
            ConfChangeKind::RemoveNode => {
                let Some(node) = self.nodes.get_mut(&cc.node) else {
                    return;
                };
                if !node.removed {
                    node.crash(0);
                    node.removed = true;
                    self.note(|| format!("node {}: removed, stopped", cc.node));
                }
            }
        }
    }

    fn send(&mut self, messages: Vec<crate::raft::Message>) {
        for msg in messages {
            let (from, to, kind) = (msg.from, msg.to, msg.kind);
            let cut = self.net.is_blocked(from, to);
            let sent = self.net.send(msg, self.now_ticks, &mut self.rng);
            if !sent {
                self.report_loss(from, to, kind, cut);
            }
        }
    }

    /// Tells the sender what its transport would notice about a lost message: a failed
    /// snapshot always, an unreachable peer when the link is cut or the peer is down (a
    /// random drop goes unnoticed, as on a real network).
    fn report_loss(&mut self, from: NodeId, to: NodeId, kind: MessageKind, noticed: bool) {
        if kind == MessageKind::InstallSnapshot {
            self.report(from, Report::Snapshot { to, ok: false });
        } else if kind == MessageKind::Append && noticed {
            self.report(from, Report::Unreachable(to));
        }
    }

    fn report(&mut self, from: NodeId, report: Report) {
        if let Some(node) = self.nodes.get_mut(&from) {
            if node.is_up() {
                node.pending_reports.push(report);
            }
        }
    }

    /// Delivers one due message (to a node that is not waiting for an fsync). Returns
    /// false when none is due.
    pub fn deliver_one(&mut self) -> bool {
        let nodes = &self.nodes;
        let can_receive = |to: NodeId| nodes.get(&to).is_none_or(|n| !n.is_busy());
        let Some(msg) = self.net.pop(self.now_ticks, &mut self.rng, can_receive) else {
            return false;
        };
        let (from, to, kind) = (msg.from, msg.to, msg.kind);
        let alive = self.nodes.get(&to).is_some_and(|n| n.is_up());
        if !alive || self.net.is_blocked(from, to) {
            self.net.note_lost();
            self.note(|| format!("lost {}", format::message(&msg)));
            self.report_loss(from, to, kind, true);
            return true;
        }
        self.net.note_delivered();
        self.note(|| format::message(&msg));
        if let Err(e) = self.node(to).raw().step(msg) {
            self.note(|| format!("node {to}: step refused: {e}"));
        }
        self.drive(to);
        if kind == MessageKind::InstallSnapshot {
            self.report(from, Report::Snapshot { to, ok: true });
            if self.nodes.contains_key(&from) {
                self.drive(from);
            }
        }
        true
    }

    /// Advances time one tick on every idle node (a node waiting for its fsync misses it).
    pub fn tick(&mut self) {
        self.now_ticks += 1;
        for id in self.up_ids() {
            if self.node(id).is_idle() {
                self.node(id).raw().tick();
                self.drive(id);
            }
        }
    }

    /// Client proposal at `id`.
    pub fn propose(&mut self, id: NodeId, data: Bytes) -> Result<(), Error> {
        let result = self.node(id).raw().propose(data);
        self.drive(id);
        result
    }

    /// Client proposals at `id` taken in one batch: all are proposed before the node's next
    /// Ready, so they travel in one log write and one round of Appends (the server's
    /// batching). Stops at the first refusal.
    pub fn propose_batch(&mut self, id: NodeId, batch: &[Bytes]) -> Result<(), Error> {
        let raw = self.node(id).raw();
        let result = batch.iter().try_for_each(|data| raw.propose(data.clone()));
        self.drive(id);
        result
    }

    /// Membership change proposed at `id`.
    pub fn propose_conf_change(&mut self, id: NodeId, cc: ConfChange) -> Result<(), Error> {
        let result = self.node(id).raw().propose_conf_change(cc);
        self.drive(id);
        result
    }

    /// `id` starts an election now.
    pub fn campaign(&mut self, id: NodeId) {
        self.node(id).raw().campaign();
        self.drive(id);
    }

    /// `id` asks to hand leadership to `to`.
    pub fn transfer_leader(&mut self, id: NodeId, to: NodeId) {
        self.node(id).raw().transfer_leader(to);
        self.drive(id);
    }

    /// Linearizable read at `id`, identified by `context`.
    pub fn read_index(&mut self, id: NodeId, context: Bytes) {
        let node = self.nodes.get_mut(&id).expect("read at an unknown node");
        node.read_index(context, &mut self.history);
        self.drive(id);
    }

    /// The application of `id` snapshots itself at its applied index.
    pub fn compact(&mut self, id: NodeId) {
        self.node(id).compact_at_applied();
        self.drive(id);
    }

    /// Power loss at `id`: it keeps a seeded prefix of its unsynced writes (or none when
    /// `lose_all_unsynced`).
    pub fn crash(&mut self, id: NodeId, lose_all_unsynced: bool) {
        use rand::Rng;
        let buffered = self.node(id).disk.buffered_len();
        let survivors = if lose_all_unsynced {
            0
        } else {
            self.rng.gen_range(0..=buffered)
        };
        self.node(id).crash(survivors);
        self.note(|| format!("node {id}: crashed, kept {survivors} of {buffered} unsynced writes"));
    }

    /// Restarts a crashed node from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("restarting an unknown node");
        node.restart(&self.history);
        self.note(|| format!("node {id}: restarted"));
        self.drive(id);
    }

    /// Checks every invariant: each up node's own `check_invariants`, election safety and,
    /// for a node newly seen leading, leader completeness.
    pub fn check_invariants(&mut self) {
        self.steps += 1;
        for node in self.nodes.values() {
            let Some(raw) = node.raw.as_ref() else {
                continue;
            };
            raw.check_invariants();
            let (role, term) = (raw.role(), raw.term());
            if self.history.is_new_leader(node.id, role, term) {
                let first = raw.first_index();
                self.history
                    .check_leader_completeness(node.id, term, first, |i| raw.term_at(i));
            }
        }
    }
}
