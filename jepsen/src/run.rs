//! One campaign from start to verdict: set up the network, start the cluster, wait until it
//! serves, run the workload and the nemesis for the given time, heal, read every key once
//! more (final reads), check, write the report.
//!
//! Called by the CLI (`main.rs`) and `tests/harness.rs`. It composes the other modules and
//! holds no logic of its own beyond the order of the phases.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tonic::transport::Channel;

use crate::checker::{self, Verdict};
use crate::client::{self, Client};
use crate::cluster::Cluster;
use crate::history::Recorder;
use crate::nemesis::{FaultKind, Nemesis};
use crate::net::{Net, NetError};
use crate::report;
use crate::workload::{self, WorkloadKind, WorkloadSpec};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The server binary (takes etcd's flags).
    pub bin: PathBuf,
    /// Cluster size.
    pub nodes: usize,
    /// How long the workload and nemesis run.
    pub time: Duration,
    /// Enabled fault kinds (may be empty: no faults).
    pub nemesis: Vec<FaultKind>,
    /// The workload.
    pub workload: WorkloadSpec,
    /// Seeds the workload's and the nemesis's randomness.
    pub seed: u64,
    /// Where run folders go (`<runs_dir>/<timestamp>-<seed>/`).
    pub runs_dir: PathBuf,
    /// Extra arguments for every member (`--server-arg`, repeatable).
    pub server_args: Vec<String>,
}

/// The facts of a run besides the verdict (`run.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The binary tested.
    pub bin: String,
    /// Extra server arguments (a planted fault shows here).
    pub server_args: Vec<String>,
    /// Cluster size.
    pub nodes: usize,
    /// Workload name.
    pub workload: String,
    /// Enabled fault kinds.
    pub nemesis: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// Seconds the workload ran.
    pub seconds: f64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Members that exited on their own during the run (see their logs).
    pub crashed: Vec<String>,
}

/// A finished run.
pub struct RunOutcome {
    /// The run's folder.
    pub dir: PathBuf,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// The run's facts.
    pub summary: Summary,
}

/// Runs one campaign (see the module docs).
pub async fn run(options: &RunOptions) -> anyhow::Result<RunOutcome> {
    let dir = run_dir(options)?;
    let wants_network = options.nemesis.iter().any(|k| k.is_network());
    let net = if wants_network {
        Net::namespaces(options.nodes)?
    } else {
        Net::loopback()
    };
    if options.nemesis.contains(&FaultKind::Latency) && !net.faults()?.supports_latency() {
        return Err(NetError::Unsupported("latency needs the kernel's sch_netem".into()).into());
    }
    let net = Arc::new(net);
    let token = format!("jepsen-{}", options.seed);
    let mut cluster = Cluster::new(&options.bin, options.nodes, &dir, &net, &token)
        .with_server_args(&options.server_args);
    cluster.start_all()?;
    let urls = cluster.client_urls();
    let cluster = Arc::new(Mutex::new(cluster));
    wait_ready(&urls, Duration::from_secs(30))
        .await
        .context("cluster never became ready")?;

    let recorder = Arc::new(Recorder::new());
    let channels = urls
        .iter()
        .map(|u| client::channel(u))
        .collect::<anyhow::Result<Vec<Channel>>>()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let nemesis = Nemesis::new(
        options.nemesis.clone(),
        cluster.clone(),
        net.clone(),
        recorder.clone(),
        options.seed,
    );
    let nemesis = tokio::spawn(nemesis.run(stop_rx.clone()));
    let workload = {
        let (spec, recorder, seed) = (options.workload.clone(), recorder.clone(), options.seed);
        let channels = channels.clone();
        tokio::spawn(async move { workload::run(&spec, &channels, recorder, seed, stop_rx).await })
    };
    let started = Instant::now();
    tokio::time::sleep(options.time).await;
    stop_tx
        .send(true)
        .expect("receivers live until the tasks end");
    workload.await.context("workload task")?;
    let seconds = started.elapsed().as_secs_f64();
    let faults_injected = nemesis.await.context("nemesis task")??;
    // Everything is healed: give the cluster time to recover, then read every key once.
    wait_ready(&urls, Duration::from_secs(30))
        .await
        .context("cluster did not recover after healing")?;
    workload::final_reads(&options.workload, &channels, &recorder).await;
    let crashed = cluster.lock().expect("cluster lock").crashed();

    let history = recorder.history();
    let verdict = match options.workload.kind {
        WorkloadKind::Register => checker::check_register(&history),
        WorkloadKind::Append => checker::check_append(&history),
    };
    let summary = Summary {
        bin: options.bin.display().to_string(),
        server_args: options.server_args.clone(),
        nodes: options.nodes,
        workload: format!("{:?}", options.workload.kind).to_lowercase(),
        nemesis: options
            .nemesis
            .iter()
            .map(|k| k.name().to_string())
            .collect(),
        seed: options.seed,
        seconds,
        faults_injected,
        crashed,
    };
    report::write(&dir, &history, &recorder.events(), &verdict, &summary)?;
    drop(cluster);
    if verdict.valid {
        remove_data_dirs(&dir)?;
    }
    Ok(RunOutcome {
        dir,
        verdict,
        summary,
    })
}

/// Member data dirs are hundreds of MB (preallocated WAL files): a valid run keeps only its
/// history, logs and report; an invalid one keeps everything for the post-mortem.
fn remove_data_dirs(dir: &std::path::Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && path.extension().is_some_and(|e| e == "data") {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

fn run_dir(options: &RunOptions) -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let dir = options.runs_dir.join(format!("{stamp}-{}", options.seed));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

/// Waits until some member reports a leader and every member answers a read.
async fn wait_ready(urls: &[String], deadline: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if client::leader(urls, Duration::from_millis(500))
            .await
            .is_some()
        {
            let mut all = true;
            for url in urls {
                let mut client = Client::new(client::channel(url)?, Duration::from_secs(1));
                all &= client.get("jepsen/ready").await.is_ok();
            }
            if all {
                return Ok(());
            }
        }
        if start.elapsed() > deadline {
            bail!("no leader, or a member not serving reads, after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
