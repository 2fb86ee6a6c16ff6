//! The nemesis: injects faults on a schedule drawn from the run's seed, heals each one, and
//! records every fault interval (`nemesis.jsonl`).
//!
//! A cycle: stay quiet 2-4 s, pick one enabled fault kind (and with probability 0.3 a second,
//! never two network faults at once, since healing the network heals both), inject, hold
//! 3-8 s, heal in reverse order. When the run ends every fault still active is healed, then
//! every member is resumed and restarted ([`Cluster::heal`]) and the network flushed.
//!
//! Fault kinds (`--nemesis`):
//! - `kill`: kill -9 one random member, the leader, or a random minority; restart on heal.
//! - `pause`: SIGSTOP the same kinds of targets; SIGCONT on heal.
//! - `partition` (root): random halves, an isolated leader, a bridge (two halves joined by
//!   one member that sees both), or one-way (one half stops receiving from the other).
//! - `loss` (root): every member drops 20% of the packets it sends.
//! - `latency` (root + `sch_netem`): every member delays what it sends by 50-200 ms.
//!
//! The schedule depends only on the seed and on which member is leader when a leader-
//! targeted fault starts. This module does not talk to clients or judge anything.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::client;
use crate::cluster::Cluster;
use crate::history::{Phase, Recorder};
use crate::net::Net;

/// A kind of fault the nemesis can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// kill -9, restart on heal.
    Kill,
    /// SIGSTOP, SIGCONT on heal.
    Pause,
    /// Cut links between members.
    Partition,
    /// Random packet loss.
    Loss,
    /// Added latency.
    Latency,
}

impl FaultKind {
    /// Parses a `--nemesis` word.
    pub fn parse(word: &str) -> anyhow::Result<FaultKind> {
        Ok(match word.trim() {
            "kill" => FaultKind::Kill,
            "pause" => FaultKind::Pause,
            "partition" => FaultKind::Partition,
            "loss" => FaultKind::Loss,
            "latency" => FaultKind::Latency,
            other => bail!("unknown nemesis {other:?} (kill, pause, partition, loss, latency)"),
        })
    }

    /// The name used in `nemesis.jsonl` and the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Loss => "loss",
            FaultKind::Latency => "latency",
        }
    }

    /// Whether the fault works on the network (needs root).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultKind::Partition | FaultKind::Loss | FaultKind::Latency
        )
    }
}

/// A fault in force, with what its heal must undo.
enum Active {
    Killed(Vec<usize>),
    Paused(Vec<usize>),
    Network(FaultKind),
}

/// Everything the nemesis acts on.
pub struct Nemesis {
    /// Enabled fault kinds.
    pub kinds: Vec<FaultKind>,
    /// The members.
    pub cluster: Arc<Mutex<Cluster>>,
    /// Their network.
    pub net: Arc<Net>,
    /// Where fault intervals go.
    pub recorder: Arc<Recorder>,
    /// Client URLs, for leader lookup.
    pub urls: Vec<String>,
    /// The schedule's randomness.
    pub rng: StdRng,
}

/// Sleeps `duration` or until the run ends; false if the run ended.
async fn sleep_or_stop(duration: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    !stopped && !*stop.borrow()
}

impl Nemesis {
    /// A nemesis whose schedule comes from `seed`.
    pub fn new(
        kinds: Vec<FaultKind>,
        cluster: Arc<Mutex<Cluster>>,
        net: Arc<Net>,
        recorder: Arc<Recorder>,
        seed: u64,
    ) -> Nemesis {
        let urls = cluster.lock().expect("cluster lock").client_urls();
        let rng = StdRng::seed_from_u64(seed.wrapping_add(0x006e_656d_6573_6973));
        Nemesis {
            kinds,
            cluster,
            net,
            recorder,
            urls,
            rng,
        }
    }

    /// Runs fault cycles until `stop`, then heals everything. Returns faults injected.
    pub async fn run(
        mut self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<u64> {
        let mut injected = 0;
        while !self.kinds.is_empty() {
            let quiet = Duration::from_millis(self.rng.gen_range(2000..4000));
            if !sleep_or_stop(quiet, &mut stop).await {
                break;
            }
            let mut active = Vec::new();
            for kind in self.pick() {
                active.push(self.inject(kind).await?);
                injected += 1;
            }
            let hold = Duration::from_millis(self.rng.gen_range(3000..8000));
            sleep_or_stop(hold, &mut stop).await;
            while let Some(fault) = active.pop() {
                self.heal(fault)?;
            }
            if *stop.borrow() {
                break;
            }
        }
        self.cluster.lock().expect("cluster lock").heal()?;
        if let Ok(ns) = self.net.faults() {
            ns.heal()?;
        }
        Ok(injected)
    }

    /// One or two distinct kinds, at most one of them a network fault.
    fn pick(&mut self) -> Vec<FaultKind> {
        let first = *self
            .kinds
            .choose(&mut self.rng)
            .expect("kinds is not empty");
        let mut picked = vec![first];
        if self.rng.gen_bool(0.3) {
            let second = *self
                .kinds
                .choose(&mut self.rng)
                .expect("kinds is not empty");
            if second != first && !(second.is_network() && first.is_network()) {
                picked.push(second);
            }
        }
        picked
    }

    /// One random member, the leader, or a random minority.
    async fn targets(&mut self) -> (Vec<usize>, String) {
        let n = self.urls.len();
        let mut all: Vec<usize> = (0..n).collect();
        all.shuffle(&mut self.rng);
        match self.rng.gen_range(0..3) {
            0 => (vec![all[0]], "one".into()),
            1 => match client::leader(&self.urls, Duration::from_millis(500)).await {
                Some(leader) => (vec![leader], "leader".into()),
                None => (vec![all[0]], "one (no leader found)".into()),
            },
            _ => (all[..(n - 1) / 2].to_vec(), "minority".into()),
        }
    }

    async fn inject(&mut self, kind: FaultKind) -> anyhow::Result<Active> {
        let active = match kind {
            FaultKind::Kill | FaultKind::Pause => {
                let (targets, how) = self.targets().await;
                let mut cluster = self.cluster.lock().expect("cluster lock");
                let mut hit = Vec::new();
                for &i in &targets {
                    // A member already down (killed by the other fault of this cycle) is skipped.
                    if !cluster.is_running(i) || cluster.is_paused(i) {
                        continue;
                    }
                    match kind {
                        FaultKind::Kill => cluster.kill(i)?,
                        _ => cluster.pause(i)?,
                    }
                    hit.push(i);
                }
                let detail = format!("{how}: {}", names(&hit));
                self.recorder.nemesis(Phase::Start, kind.name(), detail);
                match kind {
                    FaultKind::Kill => Active::Killed(hit),
                    _ => Active::Paused(hit),
                }
            }
            FaultKind::Partition => {
                let detail = self.partition().await?;
                self.recorder.nemesis(Phase::Start, kind.name(), detail);
                Active::Network(kind)
            }
            FaultKind::Loss | FaultKind::Latency => {
                let ns = self.net.faults()?;
                let delay_ms = self.rng.gen_range(50..200);
                for i in 0..self.urls.len() {
                    match kind {
                        FaultKind::Loss => ns.loss(i, 20)?,
                        _ => ns.latency(i, delay_ms)?,
                    }
                }
                let detail = match kind {
                    FaultKind::Loss => "all members drop 20% of sent packets".into(),
                    _ => format!("all members delay sent packets {delay_ms} ms"),
                };
                self.recorder.nemesis(Phase::Start, kind.name(), detail);
                Active::Network(kind)
            }
        };
        Ok(active)
    }

    fn heal(&mut self, fault: Active) -> anyhow::Result<()> {
        let (name, detail) = match fault {
            Active::Killed(members) => {
                let mut cluster = self.cluster.lock().expect("cluster lock");
                for &i in &members {
                    cluster.start(i)?;
                }
                ("kill", format!("restarted {}", names(&members)))
            }
            Active::Paused(members) => {
                let mut cluster = self.cluster.lock().expect("cluster lock");
                for &i in &members {
                    cluster.resume(i)?;
                }
                ("pause", format!("resumed {}", names(&members)))
            }
            Active::Network(kind) => {
                self.net.faults()?.heal()?;
                (kind.name(), "network healed".to_string())
            }
        };
        self.recorder.nemesis(Phase::Stop, name, detail);
        Ok(())
    }

    /// Cuts links for one partition variant; returns its description.
    async fn partition(&mut self) -> anyhow::Result<String> {
        let n = self.urls.len();
        let mut all: Vec<usize> = (0..n).collect();
        all.shuffle(&mut self.rng);
        let variant = self.rng.gen_range(0..4);
        let (a, b, bridge, one_way) = match variant {
            0 => (all[..n / 2].to_vec(), all[n / 2..].to_vec(), None, false),
            1 => {
                // No leader known (mid-election): isolate a random member instead.
                let leader = client::leader(&self.urls, Duration::from_millis(500)).await;
                let leader = leader.unwrap_or(all[0]);
                (
                    vec![leader],
                    (0..n).filter(|&i| i != leader).collect(),
                    None,
                    false,
                )
            }
            2 => {
                let rest = &all[1..];
                let half = rest.len() / 2;
                (
                    rest[..half].to_vec(),
                    rest[half..].to_vec(),
                    Some(all[0]),
                    false,
                )
            }
            _ => (all[..n / 2].to_vec(), all[n / 2..].to_vec(), None, true),
        };
        let ns = self.net.faults()?;
        for &x in &a {
            for &y in &b {
                ns.cut(y, x)?;
                if !one_way {
                    ns.cut(x, y)?;
                }
            }
        }
        Ok(match (variant, bridge) {
            (1, _) => format!("isolated leader {} | {}", names(&a), names(&b)),
            (_, Some(bridge)) => {
                format!(
                    "bridge {} | {} | {}",
                    names(&a),
                    names(&[bridge]),
                    names(&b)
                )
            }
            _ if one_way => format!("one-way: {} stop receiving from {}", names(&a), names(&b)),
            _ => format!("halves {} | {}", names(&a), names(&b)),
        })
    }
}

/// `n1 n3` for member indexes [0, 2].
fn names(members: &[usize]) -> String {
    let names: Vec<String> = members.iter().map(|i| format!("n{}", i + 1)).collect();
    names.join(" ")
}
