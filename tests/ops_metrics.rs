//! Status and metrics (issue 7), proven on a working cluster rather than on a registry.
//!
//! 1. `metrics_move_and_match_etcd`: a 3-member raftkv cluster takes writes; then every
//!    member's `/metrics` must carry etcd's names and types, and the values must have
//!    moved: a leader known and exactly one leader, leader changes seen, proposals
//!    committed and applied at least the writes, WAL fsyncs and backend commits observed,
//!    WAL bytes written, db size above zero, and peer bytes sent to and received from each
//!    peer it talks to (the leader: every follower; a follower: the leader).
//!    `etcdctl endpoint status -w table` and `endpoint health -w table` must show true
//!    values (ids, the leader, one raft term, indexes past the writes, db size, not
//!    learners). The same checks then run on a real etcd 3.4 cluster (when installed),
//!    which proves the expectations themselves, and the names raftkv exports must exist
//!    in etcd with the same types and help texts.
//! 2. `slow_apply_is_warned_and_counted`: one in-process member with
//!    `--experimental-warning-apply-duration` 0 counts its applies as slow (the flag
//!    itself: `warning_apply_duration_flag_is_honoured_not_ignored`; the thresholds of all
//!    three warnings are unit-tested with made-up durations in `src/server/slow_ops.rs`).
//!
//! (A snapshot install's `etcd_snap_db_save_total_duration_seconds` and
//! `etcd_server_snapshot_apply_in_progress_total` are checked where a follower catches up
//! from an image: `tests/server_cluster.rs`.)
//!
//! Nothing here asserts how fast anything is; every wait polls a condition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod support;
use support::binary::{require_etcd, require_raftkv};
use support::cluster::POLL_INTERVAL;
use support::http::body_http10 as http_get;
use support::{json, Cluster, ClusterOptions, ServerBinary};

mod server_support;

/// Writes before the scrape: proposals committed/applied must reach at least this.
const WRITES: usize = 20;

/// How long the values may take to show (the db size is refreshed about once a second).
const SCRAPE_DEADLINE: Duration = Duration::from_secs(20);

/// Metric families both etcd 3.4 and raftkv must export after the writes, with their type.
const REQUIRED: &[(&str, &str)] = &[
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_is_learner", "gauge"),
    ("etcd_server_leader_changes_seen", "counter"),
    ("etcd_server_heartbeat_send_failures", "counter"),
    ("etcd_server_slow_apply", "counter"),
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_proposals_failed", "counter"),
    ("etcd_server_quota_backend_bytes", "gauge"),
    ("etcd_server_snapshot_apply_in_progress_total", "gauge"),
    ("etcd_server_id", "gauge"),
    ("etcd_server_version", "gauge"),
    ("etcd_cluster_version", "gauge"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_wal_write_bytes_total", "gauge"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_debugging_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_snap_db_save_total_duration_seconds", "histogram"),
    ("etcd_network_peer_sent_bytes", "counter"),
    ("etcd_network_peer_received_bytes", "counter"),
    ("etcd_network_active_peers", "gauge"),
];

/// etcd families that appear only once something went wrong (a labelled vector without
/// samples is not printed), so one healthy etcd scrape cannot show them.
const ETCD_AFTER_FAILURES: &[&str] = &[
    "etcd_network_peer_sent_failures",
    "etcd_network_disconnected_peers",
];

/// One `/metrics` page: family types and samples.
struct Scrape {
    /// Family name -> type. Counter families are named without `_total` (OpenMetrics
    /// style, as raftkv prints them; etcd's `# TYPE x_total counter` is normalised).
    types: BTreeMap<String, String>,
    /// Family name (as in `types`) -> help text without a trailing `.` (prometheus-client
    /// adds one where etcd's has none).
    helps: BTreeMap<String, String>,
    /// (sample name, label text inside the braces, value).
    samples: Vec<(String, String, f64)>,
    text: String,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut types = BTreeMap::new();
        let mut helps = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                let help = help.trim_end_matches('.').to_string();
                helps.insert(name.to_string(), help.clone());
                // etcd names a counter family with its `_total`; raftkv without.
                if let Some(bare) = name.strip_suffix("_total") {
                    helps.entry(bare.to_string()).or_insert(help);
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line has a type");
                let name = match kind {
                    "counter" => name.strip_suffix("_total").unwrap_or(name),
                    _ => name,
                };
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').expect("sample has a value");
                let (name, labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.trim_end_matches('}')),
                    None => (series, ""),
                };
                let value = value.parse().unwrap_or(f64::NAN);
                samples.push((name.to_string(), labels.to_string(), value));
            }
        }
        Scrape {
            types,
            helps,
            samples,
            text,
        }
    }

    /// The sum of `name`'s samples whose labels contain `labels` (0 when none).
    fn value(&self, name: &str, labels: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && l.contains(labels))
            .fold(0.0, |sum, (_, _, v)| sum + v)
    }
}

/// What member `i`'s scrape must show; `Err` names the first thing that does not hold yet.
///
/// Peer traffic is checked where Raft makes it: the leader talks to every follower, a
/// follower only to the leader (raftkv connects to a peer when it first has something for
/// it, so two followers of a stable leader exchange nothing).
fn check_member(c: &Cluster, i: usize, leader: usize, s: &Scrape) -> Result<(), String> {
    for (name, kind) in REQUIRED {
        if s.types.get(*name).map(String::as_str) != Some(*kind) {
            return Err(format!("{name} is not a {kind}: {:?}", s.types.get(*name)));
        }
    }
    let id = format!("{:x}", c.member_id(i));
    let at_least = |name: &str, labels: &str, min: f64| {
        let v = s.value(name, labels);
        (v >= min)
            .then_some(())
            .ok_or(format!("{name}{{{labels}}} = {v} < {min}"))
    };
    let writes = WRITES as f64;
    at_least("etcd_server_has_leader", "", 1.0)?;
    at_least("etcd_server_leader_changes_seen_total", "", 1.0)?;
    at_least("etcd_server_proposals_committed_total", "", writes)?;
    at_least("etcd_server_proposals_applied_total", "", writes)?;
    at_least("etcd_disk_wal_fsync_duration_seconds_count", "", 1.0)?;
    at_least("etcd_disk_backend_commit_duration_seconds_count", "", 1.0)?;
    at_least("etcd_disk_wal_write_bytes_total", "", 1.0)?;
    at_least("etcd_mvcc_db_total_size_in_bytes", "", 1.0)?;
    at_least("etcd_debugging_mvcc_db_total_size_in_bytes", "", 1.0)?;
    at_least("etcd_mvcc_db_total_size_in_use_in_bytes", "", 1.0)?;
    at_least("etcd_server_quota_backend_bytes", "", 1.0)?;
    at_least("etcd_server_id", &format!("server_id=\"{id}\""), 1.0)?;
    let talks_to = |p: usize| p != i && (i == leader || p == leader);
    for peer in (0..c.size()).filter(|&p| talks_to(p)) {
        let peer = format!("{:x}", c.member_id(peer));
        let to = format!("To=\"{peer}\"");
        at_least("etcd_network_peer_sent_bytes_total", &to, 1.0)?;
        let from = format!("From=\"{peer}\"");
        at_least("etcd_network_peer_received_bytes_total", &from, 1.0)?;
        let remote = format!("Remote=\"{peer}\"");
        at_least("etcd_network_active_peers", &remote, 1.0)?;
    }
    Ok(())
}

/// Scrapes member `i` until [`check_member`] holds; panics with the reason after the
/// deadline.
fn scrape_checked(c: &Cluster, i: usize, leader: usize) -> Scrape {
    let deadline = Instant::now() + SCRAPE_DEADLINE;
    loop {
        let scrape = http_get(&c.member(i).client_url, "/metrics").map(Scrape::parse);
        let why = match &scrape {
            Some(s) => check_member(c, i, leader, s),
            None => Err("no /metrics answer".to_string()),
        };
        match why {
            Ok(()) => return scrape.expect("checked"),
            Err(why) if Instant::now() > deadline => {
                let text = scrape.map(|s| s.text).unwrap_or_default();
                panic!("{} m{i}: {why}\n/metrics:\n{text}", c.binary().name());
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// The cells of each data row of an etcdctl table, keyed by its first cell (the endpoint).
fn table_rows(table: &str) -> BTreeMap<String, Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            (cells[0].clone(), cells)
        })
        .filter(|(endpoint, _)| endpoint.starts_with("http"))
        .collect()
}

/// `endpoint status -w table` and `-w json` and `endpoint health -w table` against all
/// members show the cluster as it is.
fn check_status_and_health(c: &Cluster, leader: usize) {
    let table = c
        .ctl_any(&["endpoint", "status", "-w", "table"])
        .ok("status table");
    eprintln!("{}", table.stdout);
    let rows = table_rows(&table.stdout);
    let json = c
        .ctl_any(&["endpoint", "status", "-w", "json"])
        .ok("status json");
    let terms = json::u64_all(&json.stdout, "raft_term");
    assert_eq!(terms.len(), c.size(), "{}", json.stdout);
    assert!(json::u64_all(&json.stdout, "leader")
        .iter()
        .all(|&l| l == c.member_id(leader)));
    assert!(json::u64_all(&json.stdout, "dbSize").iter().all(|&d| d > 0));
    for i in 0..c.size() {
        let row = &rows[&c.member(i).client_url];
        // ENDPOINT | ID | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM |
        // RAFT INDEX | RAFT APPLIED INDEX | ERRORS
        assert_eq!(row[1], format!("{:x}", c.member_id(i)), "{row:?}");
        assert!(row[2].starts_with("3."), "version {row:?}");
        assert!(!row[3].starts_with("0 "), "db size {row:?}");
        assert_eq!(row[4], (i == leader).to_string(), "is leader {row:?}");
        assert_eq!(row[5], "false", "is learner {row:?}");
        let term: u64 = row[6].parse().unwrap();
        assert!(terms.contains(&term) && term >= 1, "raft term {row:?}");
        let index: u64 = row[7].parse().unwrap();
        let applied: u64 = row[8].parse().unwrap();
        assert!(
            index >= WRITES as u64 && applied >= WRITES as u64,
            "{row:?}"
        );
        assert_eq!(row[9], "", "errors {row:?}");
    }
    let health = c
        .ctl_any(&["endpoint", "health", "-w", "table"])
        .ok("health");
    eprintln!("{}", health.stdout);
    let rows = table_rows(&health.stdout);
    for i in 0..c.size() {
        // ENDPOINT | HEALTH | TOOK | ERROR
        let row = &rows[&c.member(i).client_url];
        assert_eq!((row[1].as_str(), row[3].as_str()), ("true", ""), "{row:?}");
    }
}

/// Starts 3 members of `binary`, writes, checks status, health and every member's
/// metrics; returns member 0's scrape.
fn cluster_metrics(binary: &ServerBinary) -> Scrape {
    eprintln!("phase: start 3 {} members", binary.name());
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let mut c = Cluster::start(binary, &opts);
    let leader = c.wait_leader(Duration::from_secs(20));
    eprintln!("phase: {WRITES} writes spread over the members");
    for i in 0..WRITES {
        c.ctl(i % 3, &["put", &format!("k{i}"), "v"]).ok("put");
    }
    eprintln!("phase: every member's /metrics shows etcd's names and moved values");
    let scrapes: Vec<Scrape> = (0..3).map(|i| scrape_checked(&c, i, leader)).collect();
    let leaders: f64 = scrapes
        .iter()
        .map(|s| s.value("etcd_server_is_leader", ""))
        .sum();
    assert_eq!(leaders, 1.0, "exactly one member says it leads");
    assert_eq!(scrapes[leader].value("etcd_server_is_leader", ""), 1.0);
    eprintln!("phase: endpoint status and health tables");
    check_status_and_health(&c, leader);
    scrapes.into_iter().next().expect("three scrapes")
}

#[test]
fn metrics_move_and_match_etcd() {
    let Some(raftkv) = require_raftkv() else {
        return;
    };
    let ours = cluster_metrics(&raftkv);
    let Some(etcd) = require_etcd() else {
        return;
    };
    let theirs = cluster_metrics(&etcd);
    eprintln!("phase: every family raftkv exports exists in etcd 3.4 with its type and help");
    let mut mismatches = Vec::new();
    for (name, kind) in &ours.types {
        match theirs.types.get(name) {
            Some(k) if k == kind && ours.helps.get(name) == theirs.helps.get(name) => {}
            Some(k) if k == kind => mismatches.push(format!(
                "{name} help: raftkv {:?}, etcd {:?}",
                ours.helps.get(name),
                theirs.helps.get(name)
            )),
            None if ETCD_AFTER_FAILURES.contains(&name.as_str()) => {}
            other => mismatches.push(format!("{name}: raftkv {kind}, etcd {other:?}")),
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_apply_is_warned_and_counted() {
    use server_support::*;
    let dir = tempfile::tempdir().unwrap();
    let net = std::sync::Arc::new(Net::default());
    let mut cfg = config("solo", dir.path(), &["solo"], 10_000);
    // Every apply takes longer than zero: each one must be warned about and counted.
    cfg.warning_apply_duration = Duration::ZERO;
    let s = start(&net, cfg);
    wait_leader(&[&s]).await;
    let slow_applies = |s: &raftkv::server::EtcdServer| {
        Scrape::parse(s.metrics().encode_text()).value("etcd_server_slow_apply_total", "")
    };
    let before = slow_applies(&s);
    put_retrying(&s, "k", "v").await;
    assert!(
        slow_applies(&s) > before,
        "the put's apply was not counted as slow"
    );
    let text = s.metrics().encode_text();
    assert!(histogram_count(&text, "etcd_disk_wal_fsync_duration_seconds") > 0);
    s.stop();
}

#[test]
fn warning_apply_duration_flag_is_honoured_not_ignored() {
    use raftkv::api::Settings;
    let parse = |args: &[&str]| {
        Settings::parse_from(std::iter::once("raftkv").chain(args.iter().copied())).unwrap()
    };
    let s = parse(&[]);
    assert_eq!(s.server.warning_apply_duration, Duration::from_millis(100));
    let s = parse(&["--experimental-warning-apply-duration=250ms"]);
    assert_eq!(s.server.warning_apply_duration, Duration::from_millis(250));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // etcd 3.6's name for the same flag.
    let s = parse(&["--warning-apply-duration=2s"]);
    assert_eq!(s.server.warning_apply_duration, Duration::from_secs(2));
}
