//! A short Jepsen campaign against the binary under test: 3 members, the register workload,
//! kill + pause + partition, 25 s. It proves the harness end to end (processes start, faults
//! are injected and healed, the history is recorded and checked) and that the server keeps
//! a linearizable history under those faults.
//!
//! The binary: `$JEPSEN_BIN`, else `raftkv` in the target dir (build it first:
//! `cargo build --bin raftkv`), else `/usr/bin/etcd` (said loudly). Partitions need root and
//! iptables; without them they are dropped with a loud message, and under `CI=true` (CI runs
//! as root and `.ci/run` installs iptables) that is a failure. The seed is printed; replay
//! with `SEED=n`.

use std::path::PathBuf;
use std::time::Duration;

use jepsen::nemesis::FaultKind;
use jepsen::net::is_root;
use jepsen::run::{run, RunOptions};
use jepsen::workload::{WorkloadKind, WorkloadSpec};

fn binary_under_test() -> PathBuf {
    if let Some(bin) = std::env::var_os("JEPSEN_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/harness-<hash> -> target/<profile>/raftkv
    let exe = std::env::current_exe().expect("current exe");
    let raftkv = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("raftkv"));
    match raftkv {
        Some(raftkv) if raftkv.exists() => raftkv,
        _ => {
            eprintln!(
                "!!! harness: no raftkv binary in the target dir: testing /usr/bin/etcd instead"
            );
            PathBuf::from("/usr/bin/etcd")
        }
    }
}

fn nemesis() -> Vec<FaultKind> {
    let mut kinds = vec![FaultKind::Kill, FaultKind::Pause];
    let has_iptables = std::process::Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok();
    if is_root() && has_iptables {
        kinds.push(FaultKind::Partition);
    } else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        eprintln!(
            "!!! harness: partitions SKIPPED: they need root (have: {}) and iptables (have: {})",
            is_root(),
            has_iptables
        );
        assert!(
            !ci,
            "CI=true runs as root with iptables (.ci/run): partitions must run"
        );
    }
    kinds
}

#[test]
fn register_campaign_under_kill_pause_partition_is_linearizable() {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    let options = RunOptions {
        bin: binary_under_test(),
        nodes: 3,
        time: Duration::from_secs(25),
        nemesis: nemesis(),
        workload: WorkloadSpec {
            kind: WorkloadKind::Register,
            keys: 5,
            clients_per_key: 10,
            rate: 300.0,
            op_timeout: Duration::from_secs(2),
        },
        seed,
        runs_dir: std::env::temp_dir().join("jepsen-harness"),
        server_args: Vec::new(),
    };
    eprintln!(
        "harness: binary {}, seed {seed} (replay with SEED={seed})",
        options.bin.display()
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let outcome = runtime
        .block_on(run(&options))
        .unwrap_or_else(|e| panic!("seed {seed}: harness error: {e:#}"));
    let (verdict, summary) = (&outcome.verdict, &outcome.summary);
    eprintln!(
        "harness: {verdict}\nharness: report {}",
        outcome.dir.join("index.html").display()
    );

    // The run must have done something, or a valid verdict proves nothing.
    assert!(
        summary.faults_injected > 0,
        "seed {seed}: no fault was injected"
    );
    assert!(
        verdict.stats.ok > 100,
        "seed {seed}: only {} ops succeeded",
        verdict.stats.ok
    );
    assert!(
        summary.crashed.is_empty(),
        "seed {seed}: members crashed: {:?}",
        summary.crashed
    );
    assert!(
        verdict.valid,
        "seed {seed}: history is not linearizable:\n{verdict}"
    );
}
