//! The random driver: one seed becomes a schedule of client traffic and faults (drops,
//! delays, duplicates, reorders, symmetric and one-way partitions, crashes that lose
//! unsynced writes, restarts, membership changes, snapshots, reads, leadership transfers),
//! then the faults heal and the cluster must elect a leader and commit every new proposal
//! within a bounded number of ticks (liveness).
//!
//! Safety is checked by the cluster after every event; this driver adds the liveness
//! check (in `sim::liveness`). The same seed always yields the same run. Called by
//! `tests/simulation.rs`.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::cluster::{Cluster, ClusterConfig};
use super::network::Faults;
use crate::raft::{ConfChange, ConfChangeKind, NodeId};

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// Initial voters.
    pub nodes: u64,
    /// Random events before the heal.
    pub chaos_steps: u64,
    /// Proposals that must commit after the heal.
    pub liveness_proposals: u64,
    /// After the heal, a leader must exist within this many ticks.
    pub leader_ticks_max: u64,
    /// After the heal, each proposal must be applied everywhere within this many ticks.
    pub commit_ticks_max: u64,
    /// Keep an event trace and print its tail if the run panics.
    pub trace: bool,
}

impl ChaosConfig {
    /// A run of `nodes` voters sized for CI.
    pub fn new(nodes: u64) -> ChaosConfig {
        ChaosConfig {
            nodes,
            chaos_steps: 4000,
            liveness_proposals: 3,
            leader_ticks_max: 200,
            commit_ticks_max: 200,
            trace: false,
        }
    }
}

/// What a run did, for the test's summary line.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    /// Events, each followed by an invariant check.
    pub steps: u64,
    /// Logical ticks elapsed.
    pub ticks: u64,
    /// Client proposals acknowledged (applied somewhere).
    pub acknowledged: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Partitions injected (both kinds).
    pub partitions: u64,
    /// Membership changes proposed and accepted by a leader.
    pub conf_changes: u64,
    /// Reads served and checked.
    pub reads: u64,
    /// Snapshots from a leader installed by followers.
    pub snapshots: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages lost.
    pub lost: u64,
}

/// One seeded run.
pub struct Chaos {
    /// The cluster under test.
    pub cluster: Cluster,
    pub(super) config: ChaosConfig,
    rng: StdRng,
    next_payload: u64,
    stats: RunStats,
}

/// Runs seed `seed`; panics (with the evidence) on any safety or liveness violation.
pub fn run(seed: u64, config: &ChaosConfig) -> RunStats {
    let mut chaos = Chaos::new(seed, config.clone());
    for _ in 0..config.chaos_steps {
        chaos.step();
    }
    chaos.heal_and_check_liveness();
    chaos.finish_stats()
}

impl Chaos {
    /// A fresh cluster for `seed`: compaction interval and timer settings come from it.
    pub fn new(seed: u64, config: ChaosConfig) -> Chaos {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_c4a0_5000_0000);
        let mut cc = ClusterConfig::new(seed);
        cc.sync_at_once = false;
        cc.trace = config.trace;
        cc.compact_every = *[0, 3, 5, 10, 25].choose(&mut rng).expect("non-empty");
        cc.heartbeat_interval_ticks = rng.gen_range(1..=3);
        // Small messages and windows split replication into many rounds, which opens
        // interleavings (an old-term entry acknowledged apart from the new leader's).
        cc.msg_bytes_max = *[1, 200, 1 << 20].choose(&mut rng).expect("non-empty");
        cc.inflight_msgs_max = *[1, 3, 256].choose(&mut rng).expect("non-empty");
        let mut cluster = Cluster::new(cc);
        cluster.bootstrap(config.nodes);
        cluster.net.faults = random_faults(&mut rng);
        Chaos {
            cluster,
            config,
            rng,
            next_payload: 0,
            stats: RunStats::default(),
        }
    }

    /// One random event, then the invariant check.
    pub fn step(&mut self) {
        let roll = self.rng.gen_range(0..100);
        let busy = self.cluster.busy_ids();
        if roll < 25 && !busy.is_empty() {
            let id = *busy.choose(&mut self.rng).expect("non-empty");
            self.cluster.finish_ready(id);
        } else if roll < 65 {
            if !self.cluster.deliver_one() {
                self.cluster.tick();
            }
        } else if roll < 75 {
            self.cluster.tick();
        } else if roll < 88 {
            self.propose_random();
        } else {
            self.fault();
        }
        self.cluster.check_invariants();
    }

    fn idle_node(&mut self) -> Option<NodeId> {
        let idle: Vec<NodeId> = self
            .cluster
            .nodes
            .values()
            .filter(|n| n.is_idle())
            .map(|n| n.id)
            .collect();
        idle.choose(&mut self.rng).copied()
    }

    fn propose_random(&mut self) {
        let leader = self
            .cluster
            .leader()
            .filter(|&l| self.cluster.node(l).is_idle());
        let target = if self.rng.gen_bool(0.7) { leader } else { None };
        let Some(id) = target.or_else(|| self.idle_node()) else {
            return;
        };
        let payload = self.payload();
        let _ = self.cluster.propose(id, payload);
    }

    /// A fresh, unique client payload.
    pub(super) fn payload(&mut self) -> Bytes {
        self.next_payload += 1;
        Bytes::from(format!("p{}", self.next_payload))
    }

    fn fault(&mut self) {
        match self.rng.gen_range(0..13) {
            0 => self.cluster.net.faults = random_faults(&mut self.rng),
            1 => self.partition_symmetric(),
            2 => self.partition_one_way(),
            3 | 4 => self.cluster.net.heal(),
            5 => self.crash_random(),
            6 | 7 => self.restart_random(),
            8 => self.change_membership(),
            9 => self.read_random(),
            10 => self.transfer_random(),
            11 => self.campaign_random(),
            _ => self.compact_random(),
        }
    }

    /// Nodes not removed from the cluster (up or down).
    pub(super) fn members(&self) -> Vec<NodeId> {
        self.cluster
            .nodes
            .values()
            .filter(|n| !n.removed)
            .map(|n| n.id)
            .collect()
    }

    fn partition_symmetric(&mut self) {
        let mut ids = self.members();
        ids.shuffle(&mut self.rng);
        let cut = self.rng.gen_range(1..ids.len());
        let (a, b) = ids.split_at(cut);
        self.cluster.net.partition(a, b);
        self.stats.partitions += 1;
    }

    fn partition_one_way(&mut self) {
        let ids = self.members();
        for _ in 0..self.rng.gen_range(1..=3) {
            let from = *ids.choose(&mut self.rng).expect("members");
            let to = *ids.choose(&mut self.rng).expect("members");
            if from != to {
                self.cluster.net.block(from, to);
            }
        }
        self.stats.partitions += 1;
    }

    fn crash_random(&mut self) {
        let members = self.members().len();
        let down = self.cluster.down_ids().len();
        let up = self.cluster.up_ids();
        if down + 1 > (members - 1) / 2 + 1 {
            return; // keep the run interesting: at most a bare majority down at once
        }
        if let Some(&id) = up.choose(&mut self.rng) {
            let lose_all = self.rng.gen_bool(0.5);
            self.cluster.crash(id, lose_all);
            self.stats.crashes += 1;
        }
    }

    fn restart_random(&mut self) {
        if let Some(&id) = self.cluster.down_ids().choose(&mut self.rng) {
            self.cluster.restart(id);
        }
    }

    /// Adds a learner, promotes a learner, or removes a voter other than the leader,
    /// keeping between `nodes` and `nodes + 1` voters.
    fn change_membership(&mut self) {
        let Some(leader) = self.cluster.leader() else {
            return;
        };
        if !self.cluster.node(leader).is_idle() {
            return;
        }
        let cs = self.cluster.node(leader).raw().conf_state();
        let cc = if let Some(&learner) = cs.learners.iter().next() {
            cc(ConfChangeKind::AddVoter, learner)
        } else if cs.voters.len() as u64 > self.config.nodes {
            let others: Vec<NodeId> = cs.voters.iter().copied().filter(|&v| v != leader).collect();
            cc(
                ConfChangeKind::RemoveNode,
                *others.choose(&mut self.rng).expect("voters"),
            )
        } else {
            let next = self
                .cluster
                .nodes
                .keys()
                .next_back()
                .map_or(1, |id| id.0 + 1);
            cc(ConfChangeKind::AddLearner, NodeId(next))
        };
        if self.cluster.propose_conf_change(leader, cc).is_ok() {
            self.stats.conf_changes += 1;
        }
    }

    fn read_random(&mut self) {
        if let Some(id) = self.idle_node() {
            let context = self.payload();
            self.cluster.read_index(id, context);
        }
    }

    fn transfer_random(&mut self) {
        let Some(leader) = self.cluster.leader() else {
            return;
        };
        if !self.cluster.node(leader).is_idle() {
            return;
        }
        let voters: Vec<NodeId> = self
            .cluster
            .node(leader)
            .raw()
            .conf_state()
            .voters
            .into_iter()
            .collect();
        let to = *voters.choose(&mut self.rng).expect("a leader is a voter");
        self.cluster.transfer_leader(leader, to);
    }

    fn campaign_random(&mut self) {
        if let Some(id) = self.idle_node() {
            self.cluster.campaign(id);
        }
    }

    fn compact_random(&mut self) {
        if let Some(id) = self.idle_node() {
            self.cluster.compact(id);
        }
    }

    /// One line per member: role, term, commit, applied, last index.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for node in self.cluster.nodes.values().filter(|n| !n.removed) {
            let Some(raw) = node.raw.as_ref() else {
                parts.push(format!("{} down", node.id));
                continue;
            };
            let role = raw.role();
            parts.push(format!(
                "{} {role:?} t{} lead={:?} commit={} applied={} last={}",
                node.id,
                raw.term(),
                raw.leader().map(|l| l.0),
                raw.commit(),
                node.app.applied,
                raw.last_index()
            ));
        }
        format!("tick {}; {}", self.cluster.now_ticks, parts.join("; "))
    }

    fn finish_stats(&self) -> RunStats {
        let mut stats = self.stats;
        stats.steps = self.cluster.steps;
        stats.ticks = self.cluster.now_ticks;
        stats.acknowledged = self.cluster.history.acknowledged_count() as u64;
        stats.reads = self.cluster.history.reads_served;
        stats.snapshots = self.cluster.snapshots_installed;
        stats.messages = self.cluster.net.stats.sent;
        stats.lost = self.cluster.net.stats.lost;
        stats
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        if std::thread::panicking() && self.config.trace {
            let trace = &self.cluster.trace;
            let keep = std::env::var("SIM_TRACE_LINES")
                .ok()
                .and_then(|v| v.parse().ok());
            let from = trace.len().saturating_sub(keep.unwrap_or(200));
            eprintln!(
                "--- last {} events of {} ---",
                trace.len() - from,
                trace.len()
            );
            for line in &trace[from..] {
                eprintln!("{line}");
            }
            eprintln!("--- state: {} ---", self.describe());
        }
    }
}

fn cc(kind: ConfChangeKind, node: NodeId) -> ConfChange {
    ConfChange {
        kind,
        node,
        context: Bytes::new(),
    }
}

fn random_faults(rng: &mut StdRng) -> Faults {
    Faults {
        drop: *[0.0, 0.01, 0.05, 0.2].choose(rng).expect("non-empty"),
        duplicate: *[0.0, 0.02, 0.1].choose(rng).expect("non-empty"),
        delay_ticks_max: rng.gen_range(0..=4),
        reorder: rng.gen_bool(0.7),
    }
}
