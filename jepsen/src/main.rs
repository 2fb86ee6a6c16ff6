//! The `jepsen` CLI: one campaign against a binary that takes etcd's flags.
//!
//! `cargo run -p jepsen -- --nodes 3 --time 60s --nemesis partition,kill,pause
//! --workload register --seed 42 [--bin PATH]`. Exit code 0: the history is valid;
//! 1: the checker found it invalid; 2: the harness failed (setup, a refused fault, a crash
//! of the harness itself). Everything it decides is in [`jepsen::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use jepsen::nemesis::FaultKind;
use jepsen::run::{run, RunOptions};
use jepsen::workload::{WorkloadKind, WorkloadSpec};

/// Run a Jepsen-style campaign and check the history.
#[derive(Parser, Debug)]
#[command(name = "jepsen")]
struct Args {
    /// Cluster size (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// How long clients and nemesis run: `60s`, `2m`, `500ms`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    time: Duration,
    /// Comma-separated faults: kill, pause, partition, loss, latency; `none` for none.
    #[arg(long, default_value = "kill,pause,partition")]
    nemesis: String,
    /// `register` or `append`.
    #[arg(long, default_value = "register")]
    workload: String,
    /// Seed of the workload and nemesis schedule (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The server binary (default: `raftkv` next to this executable).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Keys (registers or lists).
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// Concurrent clients per key.
    #[arg(long, default_value_t = 10)]
    clients_per_key: usize,
    /// Target total ops/s.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Per-operation client timeout: past it the op is recorded `info`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// Where run folders go.
    #[arg(long, default_value = "jepsen/runs")]
    runs_dir: PathBuf,
    /// An extra argument for every member, repeatable: `--server-arg=--unsafe-test-stale-reads`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// `60s`, `2m`, `500ms`, or bare seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) =
        text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("bad duration unit in {text:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn options(args: Args) -> anyhow::Result<RunOptions> {
    let nemesis = match args.nemesis.as_str() {
        "" | "none" => Vec::new(),
        list => list
            .split(',')
            .map(FaultKind::parse)
            .collect::<anyhow::Result<_>>()?,
    };
    let kind = match args.workload.as_str() {
        "register" => WorkloadKind::Register,
        "append" => WorkloadKind::Append,
        other => anyhow::bail!("unknown workload {other:?} (register, append)"),
    };
    let bin = match args.bin {
        Some(bin) => bin,
        None => std::env::current_exe()?.with_file_name("raftkv"),
    };
    if !bin.exists() {
        anyhow::bail!(
            "server binary {} not found (build it, or pass --bin)",
            bin.display()
        );
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let workload = WorkloadSpec {
        kind,
        keys: args.keys,
        clients_per_key: args.clients_per_key,
        rate: args.rate,
        op_timeout: args.op_timeout,
    };
    Ok(RunOptions {
        bin,
        nodes: args.nodes,
        time: args.time,
        nemesis,
        workload,
        seed,
        runs_dir: args.runs_dir,
        server_args: args.server_args,
    })
}

fn main() -> ExitCode {
    let options = match options(Args::parse()) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("jepsen: {error:#}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "jepsen: seed {} (replay with --seed {})",
        options.seed, options.seed
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // On Ctrl-C the run is dropped, and with it (when the runtime shuts down) the members
    // and the network namespaces: nothing is left behind.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&options) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    drop(runtime);
    match outcome {
        Ok(outcome) => {
            println!("{}", outcome.verdict);
            let s = &outcome.summary;
            println!(
                "faults injected: {}, crashed members: {:?}",
                s.faults_injected, s.crashed
            );
            println!("report: {}", outcome.dir.join("index.html").display());
            ExitCode::from(if outcome.verdict.valid { 0 } else { 1 })
        }
        Err(error) => {
            eprintln!("jepsen: harness error: {error:#}");
            ExitCode::from(2)
        }
    }
}
