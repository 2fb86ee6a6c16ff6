//! The golden-script interpreter: runs a scenario written as commands with their expected
//! output inline (the style of etcd-io/raft's datadriven `testdata`), and returns the
//! output it actually produced, so a test can compare or rewrite the file.
//!
//! A script is blocks separated by blank lines. Lines starting with `#` are commentary
//! (each script opens with a paragraph saying what it proves). A block is one command
//! line, a `----` line, and the expected output (never blank; `ok` when nothing happened):
//!
//! ```text
//! # Node 1 wins an election.
//! add-nodes 3
//! ----
//! ok
//! ```
//!
//! Commands (node ids are numbers): `add-nodes N [compact-every=K] [pre-vote=false]
//! [check-quorum=false]`, `campaign N`, `propose N DATA`, `propose-conf-change N
//! add-learner|add-voter|remove M`, `deliver` (what is in flight now), `stabilize` (until
//! quiet), `tick N [verbose]` (N rounds of: tick every node, stabilize; prints state
//! changes only, or every message with `verbose`), `partition A.. | B..`, `block A -> B`
//! (one way), `heal`, `crash N` (loses every unsynced write), `restart N`, `compact N`
//! (snapshot at the applied index), `read-index N CTX`, `transfer-leader N M`, `status`,
//! `log`, `applied N`. Event commands print each delivered message (`lost ...` when a cut
//! link or a dead node ate it) and each change of role, applied batch and served read.
//! The interpreter does no IO; `tests/golden.rs` reads and writes the files.

use std::fmt::Write;

use bytes::Bytes;

use super::cluster::{Cluster, ClusterConfig};
use super::format;
use crate::raft::{ConfChange, ConfChangeKind, NodeId};

/// One command of a script with its expected and actual output.
#[derive(Clone, Debug)]
pub struct Block {
    /// 1-based line of the command.
    pub line: usize,
    /// The command line.
    pub command: String,
    /// What the file says it prints.
    pub expected: String,
    /// What it printed.
    pub actual: String,
}

/// The result of running a script.
#[derive(Debug)]
pub struct Outcome {
    /// Every command, in order.
    pub blocks: Vec<Block>,
    /// The script with each expected output replaced by the actual one.
    pub rewritten: String,
}

/// Runs `text` and returns every block's actual output and the rewritten script.
pub fn run(text: &str) -> Outcome {
    let lines: Vec<&str> = text.lines().collect();
    let mut runner = Runner { cluster: None };
    let mut blocks = Vec::new();
    let mut rewritten = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            rewritten.push_str(line);
            rewritten.push('\n');
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        assert!(
            lines.get(i) == Some(&"----"),
            "line {}: `{line}` must be followed by ----",
            i + 1
        );
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            expected.push(lines[i]);
            i += 1;
        }
        let actual = runner.execute(line.trim());
        let _ = write!(rewritten, "{line}\n----\n{actual}\n");
        let block = Block {
            line: start + 1,
            command: line.to_string(),
            expected: expected.join("\n"),
            actual,
        };
        blocks.push(block);
    }
    Outcome { blocks, rewritten }
}

struct Runner {
    cluster: Option<Cluster>,
}

fn id(arg: Option<&&str>) -> NodeId {
    let text = arg.expect("missing node id");
    NodeId(
        text.parse()
            .unwrap_or_else(|_| panic!("bad node id {text}")),
    )
}

impl Runner {
    fn c(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("add-nodes first")
    }

    fn execute(&mut self, line: &str) -> String {
        let args: Vec<&str> = line.split_whitespace().collect();
        let mut out = match args[0] {
            "add-nodes" => self.add_nodes(&args[1..]),
            "status" => self.status(),
            "log" => self.log(),
            "applied" => self.applied(id(args.get(1))),
            _ => self.event(&args),
        };
        if out.is_empty() {
            out = "ok".to_string();
        }
        out
    }

    fn add_nodes(&mut self, args: &[&str]) -> String {
        let count: u64 = args[0].parse().expect("add-nodes N");
        let mut config = ClusterConfig::new(1);
        config.record_applied = true;
        config.trace = true;
        for opt in &args[1..] {
            let (key, value) = opt.split_once('=').expect("options are key=value");
            match key {
                "compact-every" => config.compact_every = value.parse().expect("number"),
                "pre-vote" => config.pre_vote = value == "true",
                "check-quorum" => config.check_quorum = value == "true",
                "seed" => config.seed = value.parse().expect("number"),
                _ => panic!("unknown add-nodes option {key}"),
            }
        }
        let mut cluster = Cluster::new(config);
        cluster.bootstrap(count);
        self.cluster = Some(cluster);
        self.status()
    }

    /// Commands that change the cluster; they print the trace they produced.
    fn event(&mut self, args: &[&str]) -> String {
        let mut result = String::new();
        let c = self.c();
        match args[0] {
            "campaign" => c.campaign(id(args.get(1))),
            "propose" => {
                let data = Bytes::from(args.get(2).expect("propose N DATA").to_string());
                if let Err(e) = c.propose(id(args.get(1)), data) {
                    result = format!("error: {e}");
                }
            }
            "propose-conf-change" => {
                let kind = match *args.get(2).expect("kind") {
                    "add-learner" => ConfChangeKind::AddLearner,
                    "add-voter" => ConfChangeKind::AddVoter,
                    "remove" => ConfChangeKind::RemoveNode,
                    other => panic!("unknown conf change {other}"),
                };
                let cc = ConfChange {
                    kind,
                    node: id(args.get(3)),
                    context: Bytes::new(),
                };
                if let Err(e) = c.propose_conf_change(id(args.get(1)), cc) {
                    result = format!("error: {e}");
                }
            }
            "deliver" => {
                for _ in 0..c.net.len() {
                    c.deliver_one();
                    c.check_invariants();
                }
            }
            "stabilize" => stabilize(c),
            "tick" => return self.tick(args),
            "partition" => partition(c, &args[1..]),
            "block" => c.net.block(id(args.get(1)), id(args.get(3))),
            "heal" => c.net.heal(),
            "crash" => c.crash(id(args.get(1)), true),
            "restart" => c.restart(id(args.get(1))),
            "compact" => {
                let node = id(args.get(1));
                c.compact(node);
                let snap = &c.node(node).disk.current().snapshot.metadata;
                result = format!("node {node}: snapshot at {}/{}", snap.index, snap.term);
            }
            "read-index" => {
                let context = Bytes::from(args.get(2).expect("read-index N CTX").to_string());
                c.read_index(id(args.get(1)), context);
            }
            "transfer-leader" => c.transfer_leader(id(args.get(1)), id(args.get(2))),
            other => panic!("unknown command {other}"),
        }
        c.check_invariants();
        let mut lines = std::mem::take(&mut c.trace);
        if !result.is_empty() {
            lines.insert(0, result);
        }
        lines.join("\n")
    }

    fn tick(&mut self, args: &[&str]) -> String {
        let rounds: u64 = args.get(1).map_or(1, |n| n.parse().expect("tick N"));
        let verbose = args.get(2) == Some(&"verbose");
        let c = self.c();
        let mut lines = Vec::new();
        for _ in 0..rounds {
            c.tick();
            c.check_invariants();
            stabilize(c);
            let trace = std::mem::take(&mut c.trace);
            let now = c.now_ticks;
            let keep = |l: &String| verbose || (l.starts_with("node ") && !l.contains("applied"));
            lines.extend(
                trace
                    .into_iter()
                    .filter(keep)
                    .map(|l| format!("tick {now}: {l}")),
            );
        }
        lines.join("\n")
    }

    fn status(&mut self) -> String {
        let mut out = Vec::new();
        for node in self.c().nodes.values() {
            let Some(raw) = node.raw.as_ref() else {
                let why = if node.removed { "removed" } else { "down" };
                out.push(format!("{}: {why}", node.id));
                continue;
            };
            let role = raw.role();
            let lead = raw.leader().map_or("none".to_string(), |l| l.to_string());
            out.push(format!(
                "{}: {role:?} term={} leader={lead} commit={} applied={} last={} {}",
                node.id,
                raw.term(),
                raw.commit(),
                node.app.applied,
                raw.last_index(),
                format::conf_state(&raw.conf_state())
            ));
        }
        out.join("\n")
    }

    fn log(&mut self) -> String {
        let mut out = Vec::new();
        for node in self.c().nodes.values() {
            let Some(raw) = node.raw.as_ref() else {
                out.push(format!("{}: down", node.id));
                continue;
            };
            let first = raw.first_index();
            let entries = raw.entries(first, raw.last_index().next());
            let snap = first.prev();
            let snap_term = raw.term_at(snap).map_or("?".to_string(), |t| t.to_string());
            out.push(format!(
                "{}: snapshot={snap}/{snap_term} {}",
                node.id,
                format::entries(&entries)
            ));
        }
        out.join("\n")
    }

    fn applied(&mut self, node: NodeId) -> String {
        let app = &self.c().node(node).app;
        let history = app.history.as_deref().unwrap_or(&[]);
        let parts: Vec<String> = history
            .iter()
            .map(|a| {
                let e = crate::raft::Entry {
                    index: a.index,
                    term: a.term,
                    kind: a.kind,
                    data: a.data.clone(),
                };
                format::entry(&e)
            })
            .collect();
        format!(
            "node {node}: applied={} [{}]",
            app.applied,
            parts.join(", ")
        )
    }
}

/// Delivers messages until none is in flight (bounded: a script that never settles is a
/// livelock worth failing on).
fn stabilize(c: &mut Cluster) {
    for _ in 0..10_000 {
        if !c.deliver_one() {
            return;
        }
        c.check_invariants();
    }
    panic!("stabilize: still delivering after 10000 messages");
}

fn partition(c: &mut Cluster, args: &[&str]) {
    let mut groups: Vec<Vec<NodeId>> = vec![Vec::new()];
    for arg in args {
        if *arg == "|" {
            groups.push(Vec::new());
        } else {
            groups.last_mut().expect("non-empty").push(id(Some(arg)));
        }
    }
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            c.net.partition(a, b);
        }
    }
}
