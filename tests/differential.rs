//! Differential tests: scripted etcdctl sessions (`tests/differential/*.txt`, format in
//! `tests/differential/script.rs`) run against a fresh real etcd 3.4 and a fresh raftkv;
//! per command, the exit code, stdout and stderr must be equal after normalisation
//! (`tests/differential/normalize.rs`: ids, terms, addresses and a few status fields;
//! revisions must match exactly).
//!
//! Two tests:
//! - `raftkv_agrees_with_etcd`: the real comparison. Skipped (loudly) while the build has no
//!   raftkv binary; runs by itself once `CARGO_BIN_EXE_raftkv` exists, or with
//!   `RAFTKV_BIN=/path/to/raftkv`.
//! - `etcd_agrees_with_itself`: two fresh etcd instances. Proves the harness and that the
//!   normalisation covers everything that varies between two runs of a correct server, so a
//!   raftkv diff is a real difference.
//!
//! `DIFF_SCRIPT=<substring>` runs only the matching scripts. Every run writes the normalised
//! transcripts to `$CARGO_TARGET_TMPDIR/differential/<script>.<side>.txt` for reading.

mod support;

#[path = "differential/normalize.rs"]
mod normalize;
#[path = "differential/script.rs"]
mod script;

use normalize::Identity;
use script::{Script, Step};
use support::{Cluster, ClusterOptions, ServerBinary};

/// One command's normalised result.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    command: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn render(&self, line: usize) -> String {
        format!(
            "$ {}   (line {line})\nexit {}\n--- stdout\n{}--- stderr\n{}\n",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

#[test]
fn raftkv_agrees_with_etcd() {
    let Some((etcd, raftkv)) = support::binary::require_etcd_and_raftkv() else {
        return;
    };
    compare_all(&etcd, &raftkv, "etcd", "raftkv");
}

#[test]
fn etcd_agrees_with_itself() {
    let Some(etcd) = support::binary::require_etcd() else {
        return;
    };
    compare_all(&etcd, &etcd, "etcd-a", "etcd-b");
}

/// Runs every script against both servers (side by side, one thread each) and fails with
/// every script's first difference.
fn compare_all(left: &ServerBinary, right: &ServerBinary, left_name: &str, right_name: &str) {
    let scripts = load_scripts();
    assert!(!scripts.is_empty(), "no differential scripts selected");
    let mut failures = Vec::new();
    for script in &scripts {
        eprintln!("script {}: {} steps", script.name, script.steps.len());
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| run_script(left, script));
            let b = s.spawn(|| run_script(right, script));
            let join = |side: std::thread::ScopedJoinHandle<'_, Vec<Outcome>>| {
                side.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            (join(a), join(b))
        });
        save_transcript(script, left_name, &a);
        save_transcript(script, right_name, &b);
        if let Some(diff) = first_difference(script, &a, &b, left_name, right_name) {
            failures.push(diff);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts differ (transcripts in {}):\n\n{}",
        failures.len(),
        scripts.len(),
        transcript_dir().display(),
        failures.join("\n")
    );
}

/// Every `tests/differential/*.txt` (filtered by `DIFF_SCRIPT`), sorted by name.
fn load_scripts() -> Vec<Script> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential");
    let filter = std::env::var("DIFF_SCRIPT").unwrap_or_default();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("read tests/differential")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .expect("file stem")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(path).expect("read script");
            script::parse(&name, &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .filter(|script| script.name.contains(&filter))
        .collect()
}

/// Runs `script` against a fresh single member of `binary`.
fn run_script(binary: &ServerBinary, script: &Script) -> Vec<Outcome> {
    let cluster = Cluster::start(binary, &ClusterOptions::default());
    let id = identity(&cluster);
    let mut ids = Chosen::default();
    script
        .steps
        .iter()
        .map(|step| run_step(&cluster, step, &id, &mut ids))
        .collect()
}

/// Ids the servers chose during a script, in order: leases (`lease grant`) and members
/// (`member add`).
#[derive(Default)]
struct Chosen {
    leases: Vec<u64>,
    members: Vec<u64>,
}

/// Runs one step. `ids.leases`: the ids granted so far by `lease grant` steps, in order;
/// `$LEASEn` in an argument is replaced by the n-th one (hex), and every one is
/// normalised to `<lease-n>` in the output (see `normalize::normalize_leases`). The same
/// for members added by `member add`: `$MEMBERn`, `<new-member-n>`.
fn run_step(cluster: &Cluster, step: &Step, id: &Identity, ids: &mut Chosen) -> Outcome {
    let args: Vec<String> = step
        .args
        .iter()
        .map(|a| with_ids(&with_ids(a, "$LEASE", &ids.leases), "$MEMBER", &ids.members))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = match step.lines {
        Some(n) => cluster.ctl_lines(0, &args, n),
        None => cluster.ctl_stdin(0, &args, &step.stdin),
    };
    let mut outcome = Outcome {
        command: step.display(),
        code: out.code,
        stdout: normalize::normalize(&step.args, &out.stdout, id),
        stderr: normalize::normalize(&step.args, &out.stderr, id),
    };
    if args.starts_with(&["lease", "grant"]) && out.code == 0 {
        ids.leases.extend(granted_lease(&out.stdout));
    }
    if args.starts_with(&["member", "add"]) && out.code == 0 {
        ids.members.extend(added_member(&out.stdout));
    }
    for text in [&mut outcome.stdout, &mut outcome.stderr] {
        *text = normalize::normalize_leases(text, &ids.leases);
        *text = normalize::normalize_members(&step.args, text, &ids.members);
    }
    outcome
}

/// `arg` with `<var>n` replaced by the n-th chosen id in hex (highest n first, so
/// `$LEASE1` never eats the start of `$LEASE12`).
fn with_ids(arg: &str, var: &str, ids: &[u64]) -> String {
    let mut arg = arg.to_string();
    for (n, id) in ids.iter().enumerate().rev() {
        arg = arg.replace(&format!("{var}{}", n + 1), &format!("{id:x}"));
    }
    arg
}

/// The id in `Member 5fd7b78235c2d727 added to cluster ...` or in `-w json` output (the
/// new member comes first there).
fn added_member(stdout: &str) -> Option<u64> {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    match words.as_slice() {
        ["Member", hex, "added", ..] => u64::from_str_radix(hex, 16).ok(),
        _ => support::json::u64_first(stdout, "ID"),
    }
}

/// The id in `lease 694d7c8f5b1d5e04 granted with TTL(10s)` or in `-w json` output.
fn granted_lease(stdout: &str) -> Option<u64> {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    match words.as_slice() {
        ["lease", hex, "granted", ..] => u64::from_str_radix(hex, 16).ok(),
        _ => support::json::u64_first(stdout, "ID"),
    }
}

fn identity(cluster: &Cluster) -> Identity {
    let strip = |url: &str| url.trim_start_matches("http://").to_string();
    Identity {
        cluster_id: cluster.cluster_id(),
        member_id: cluster.member_id(0),
        client_addr: strip(&cluster.member(0).client_url),
        peer_addr: strip(&cluster.member(0).peer_url),
    }
}

/// The lines of every differing step, and the first difference in full (long outputs
/// clipped around the first differing byte; the saved transcripts have everything).
fn first_difference(
    script: &Script,
    a: &[Outcome],
    b: &[Outcome],
    a_name: &str,
    b_name: &str,
) -> Option<String> {
    let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    let &at = differing.first()?;
    let lines: Vec<String> = differing
        .iter()
        .map(|&i| script.steps[i].line.to_string())
        .collect();
    let line = script.steps[at].line;
    let (mut x, mut y) = (a[at].clone(), b[at].clone());
    (x.stdout, y.stdout) = clip_around_difference(&x.stdout, &y.stdout);
    (x.stderr, y.stderr) = clip_around_difference(&x.stderr, &y.stderr);
    Some(format!(
        "=== {}.txt: {} of {} steps differ (script lines {}); the first:\n--- {a_name}:\n{}--- {b_name}:\n{}",
        script.name,
        differing.len(),
        a.len(),
        lines.join(", "),
        x.render(line),
        y.render(line)
    ))
}

/// Both texts, each cut to about 300 bytes around their first differing byte when longer
/// than 1000 bytes.
fn clip_around_difference(x: &str, y: &str) -> (String, String) {
    const CONTEXT: usize = 150;
    if x.len().max(y.len()) <= 1000 {
        return (x.to_string(), y.to_string());
    }
    let at = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
    let clip = |text: &str| {
        let mut start = at.saturating_sub(CONTEXT).min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (at + CONTEXT).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        format!(
            "[... clipped at byte {start}] {} [...]\n",
            &text[start..end]
        )
    };
    (clip(x), clip(y))
}

fn transcript_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential")
}

fn save_transcript(script: &Script, side: &str, outcomes: &[Outcome]) {
    let dir = transcript_dir();
    std::fs::create_dir_all(&dir).expect("create transcript dir");
    let text: String = script
        .steps
        .iter()
        .zip(outcomes)
        .map(|(step, outcome)| outcome.render(step.line))
        .collect();
    let path = dir.join(format!("{}.{side}.txt", script.name));
    std::fs::write(&path, text).expect("write transcript");
}
