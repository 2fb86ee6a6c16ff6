//! Deterministic simulation of 3- and 5-node clusters under random faults.
//!
//! Each seed drives one run (`raftkv::sim::chaos`): client traffic with drops, delays,
//! duplicates, reorders, symmetric and one-way partitions, crashes that lose unsynced
//! writes, restarts, membership changes, snapshots, reads and leadership transfers, with
//! every Raft safety invariant checked after every event; then the faults heal and a leader
//! must appear and commit each new proposal within a bounded number of ticks.
//!
//! Environment:
//! - `SEED=n` replays seed n alone, with an event trace printed on failure;
//! - `SIM_SEEDS=n` runs n seeds per cluster size (default 1000 each, 2000 in all);
//! - `SIM_START=s` starts at seed s;
//! - `SIM_KEEP_GOING=1` runs every seed and reports how many failed instead of stopping;
//! - `SIM_TRACE_LINES=n` prints the last n trace lines of a failing `SEED` (default 200).
//!
//! The default 2000 seeds (about 4,000 events each) take 5 to 20 seconds in a debug build
//! on two cores; each test prints its seed, event and fault counts.

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use raftkv::sim::chaos::{self, ChaosConfig, RunStats};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

/// Runs the configured seeds for one cluster size; `test` names the test for the replay hint.
fn run_seeds(test: &str, nodes: u64) {
    let mut config = ChaosConfig::new(nodes);
    let seeds: Vec<u64> = match env_u64("SEED") {
        Some(seed) => {
            config.trace = true;
            vec![seed]
        }
        None => {
            let start = env_u64("SIM_START").unwrap_or(0);
            (start..start + env_u64("SIM_SEEDS").unwrap_or(1000)).collect()
        }
    };
    let keep_going = std::env::var("SIM_KEEP_GOING").is_ok_and(|v| v == "1");
    let began = Instant::now();
    let mut total = RunStats::default();
    let mut failed = Vec::new();
    for &seed in &seeds {
        match panic::catch_unwind(AssertUnwindSafe(|| chaos::run(seed, &config))) {
            Ok(stats) => add(&mut total, &stats),
            Err(cause) => {
                eprintln!(
                    "{test}: seed {seed} FAILED ({nodes} nodes). Replay with: \
                     SEED={seed} cargo test --test simulation {test} -- --nocapture"
                );
                failed.push(seed);
                if !keep_going {
                    panic::resume_unwind(cause);
                }
            }
        }
    }
    eprintln!(
        "{test}: {} seeds ({} failed), {} steps, {} ticks, {} proposals acknowledged, {} reads, \
         {} crashes, {} partitions, {} conf changes, {} snapshots installed, {} messages ({} lost) \
         in {:.1}s",
        seeds.len(),
        failed.len(),
        total.steps,
        total.ticks,
        total.acknowledged,
        total.reads,
        total.crashes,
        total.partitions,
        total.conf_changes,
        total.snapshots,
        total.messages,
        total.lost,
        began.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{test}: failing seeds {failed:?}");
}

fn add(total: &mut RunStats, run: &RunStats) {
    total.steps += run.steps;
    total.ticks += run.ticks;
    total.acknowledged += run.acknowledged;
    total.crashes += run.crashes;
    total.partitions += run.partitions;
    total.conf_changes += run.conf_changes;
    total.reads += run.reads;
    total.snapshots += run.snapshots;
    total.messages += run.messages;
    total.lost += run.lost;
}

#[test]
fn three_node_clusters() {
    run_seeds("three_node_clusters", 3);
}

#[test]
fn five_node_clusters() {
    run_seeds("five_node_clusters", 5);
}
