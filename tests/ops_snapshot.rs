//! The disaster drill (issue 7): write to a 3-member cluster, `etcdctl snapshot save`,
//! destroy the cluster, restore the file into three new data dirs, start them, and check
//! that every key, value and revision (history included) is identical and that HashKV at
//! the old revision matches the old cluster's. Runs against real etcd too (restored with
//! `etcdctl snapshot restore`), so the drill itself is checked against the reference.
//!
//! Also: `raftkvctl snapshot status` / `verify` on a good file, and a truncated or
//! corrupted file refused by status, verify and restore with a clear message (no data dir
//! left behind).

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::member::{Member, CLUSTER_TOKEN};
use support::{json, Cluster, ClusterOptions, ServerBinary, ServerKind};

fn raftkvctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
        .args(args)
        .output()
        .expect("run raftkvctl")
}

/// Restores `file` into `member`'s data dir with etcdutl's flags.
fn restore(binary: &ServerBinary, file: &Path, member: &Member, initial_cluster: &str) {
    let flags = [
        format!("--name={}", member.name),
        format!("--data-dir={}", member.data_dir.display()),
        format!("--initial-cluster={initial_cluster}"),
        format!("--initial-cluster-token={CLUSTER_TOKEN}"),
        format!("--initial-advertise-peer-urls={}", member.peer_url),
    ];
    let mut args = vec!["snapshot", "restore", file.to_str().unwrap()];
    args.extend(flags.iter().map(String::as_str));
    let out = match binary.kind {
        ServerKind::Raftkv => raftkvctl(&args),
        ServerKind::Etcd => Command::new(support::binary::etcdctl_path().unwrap())
            .env("ETCDCTL_API", "3")
            .args(&args)
            .output()
            .expect("run etcdctl"),
    };
    assert!(
        out.status.success(),
        "restore of {} failed: {}",
        member.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes puts, overwrites, deletes and a compaction; returns the revision after them.
fn write_workload(cluster: &Cluster) -> u64 {
    for i in 0..40 {
        let (k, v) = (format!("key{i:02}"), format!("value-{i}"));
        cluster.ctl_any(&["put", &k, &v]).ok("put");
    }
    for i in 0..10 {
        let v = format!("second-{i}");
        cluster
            .ctl_any(&["put", &format!("key{i:02}"), &v])
            .ok("overwrite");
    }
    cluster.ctl_any(&["del", "key3", "--prefix"]).ok("delete");
    cluster.ctl_any(&["compact", "20"]).ok("compact");
    cluster.ctl_any(&["put", "last", "one"]).ok("put");
    let out = cluster.ctl_any(&["get", "last", "-w", "json"]).ok("get");
    json::u64_first(out.out(), "revision").expect("header revision")
}

/// Everything a client can see of the data: the newest state and the history kept.
fn dump(cluster: &Cluster, i: usize, revision: u64) -> Vec<String> {
    let mut views = Vec::new();
    for rev in [revision, 30, 21] {
        let rev = format!("--rev={rev}");
        let out = cluster
            .ctl(i, &["get", "", "--prefix", &rev, "-w", "json"])
            .ok("dump");
        let kvs = out.out().find("\"kvs\"").map_or("", |at| &out.out()[at..]);
        views.push(kvs.to_string());
    }
    views
}

fn hash_kv(cluster: &Cluster, i: usize, revision: u64) -> u64 {
    let rev = format!("--rev={revision}");
    let out = cluster
        .ctl(i, &["endpoint", "hashkv", &rev, "-w", "json"])
        .ok("hashkv");
    json::u64_first(out.out(), "hash").expect("hash in hashkv output")
}

fn disaster_drill(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let backup_dir = tempfile::tempdir().unwrap();
    let file = backup_dir.path().join("backup.db");
    let old = Cluster::start(binary, &opts);
    let revision = write_workload(&old);
    let before = dump(&old, 0, revision);
    assert!(
        before.iter().all(|v| v.contains("\"key\"")),
        "empty dump: {before:?}"
    );
    let old_hash = hash_kv(&old, 0, revision);
    for i in 1..3 {
        assert_eq!(hash_kv(&old, i, revision), old_hash, "old members disagree");
    }
    let saved = old.ctl(1, &["snapshot", "save", file.to_str().unwrap()]);
    assert!(saved.success(), "snapshot save: {saved:?}");
    let old_cluster_id = old.cluster_id();
    drop(old); // kills every member and removes their data dirs

    let mut prepare = |m: &Member, ic: &str| restore(binary, &file, m, ic);
    let new = Cluster::start_prepared(binary, &opts, &mut prepare);
    assert_ne!(
        new.cluster_id(),
        old_cluster_id,
        "a restore starts a new cluster"
    );
    for i in 0..3 {
        assert_eq!(dump(&new, i, revision), before, "member {i} data differs");
        assert_eq!(
            hash_kv(&new, i, revision),
            old_hash,
            "member {i} HashKV differs"
        );
    }
    new.ctl_any(&["put", "after", "restore"])
        .ok("write to the restored cluster");
    let out = new.ctl_any(&["get", "after", "-w", "json"]).ok("get");
    assert_eq!(
        json::u64_first(out.out(), "mod_revision"),
        Some(revision + 1)
    );
}

server_tests!(disaster_drill);

fn saved_snapshot(dir: &Path) -> (PathBuf, u64) {
    let binary = support::binary::require_raftkv().expect("raftkv binary");
    let cluster = Cluster::start(&binary, &ClusterOptions::default());
    let revision = write_workload(&cluster);
    let file = dir.join("good.db");
    let saved = cluster.ctl(0, &["snapshot", "save", file.to_str().unwrap()]);
    assert!(saved.success(), "snapshot save: {saved:?}");
    (file, revision)
}

#[test]
fn snapshot_files_are_checked_and_damage_is_refused() {
    if support::binary::require_raftkv().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (good, revision) = saved_snapshot(dir.path());
    let out = raftkvctl(&["snapshot", "status", good.to_str().unwrap(), "-w", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status: {out:?}");
    assert_eq!(json::u64_first(&text, "revision"), Some(revision), "{text}");
    let out = raftkvctl(&["snapshot", "verify", good.to_str().unwrap()]);
    assert!(out.status.success(), "verify: {out:?}");

    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut flipped = bytes.clone();
    let middle = bytes.len() / 2;
    flipped[middle] ^= 0x40;
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, &flipped).unwrap();
    for (file, why) in [(&truncated, "truncated"), (&corrupt, "")] {
        let path = file.to_str().unwrap();
        for args in [
            vec!["snapshot", "status", path],
            vec!["snapshot", "verify", path],
        ] {
            let out = raftkvctl(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} accepted a damaged file");
            assert!(
                err.contains("invalid snapshot") && err.contains(why),
                "{args:?}: {err}"
            );
        }
        let data_dir = dir.path().join("restored");
        let flag = format!("--data-dir={}", data_dir.display());
        let out = raftkvctl(&["snapshot", "restore", path, &flag]);
        assert!(!out.status.success(), "restore accepted a damaged file");
        assert!(
            !data_dir.exists(),
            "a refused restore left {}",
            data_dir.display()
        );
    }
}

/// `raftkvctl snapshot save` writes the same bytes as `etcdctl snapshot save` from the same
/// member at rest, reports progress to the tenth, and refuses several endpoints (as
/// etcdctl does) or an unreachable one without leaving a file or a `.part` behind.
#[test]
fn raftkvctl_save_writes_the_image_etcdctl_saves() {
    let Some(binary) = support::binary::require_raftkv() else {
        return;
    };
    let cluster = Cluster::start(&binary, &ClusterOptions::default());
    let revision = write_workload(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let by_etcdctl = dir.path().join("etcdctl.db");
    let saved = cluster.ctl(0, &["snapshot", "save", by_etcdctl.to_str().unwrap()]);
    assert!(saved.success(), "etcdctl snapshot save: {saved:?}");
    let ours = dir.path().join("raftkvctl.db");
    let endpoint = format!("--endpoints={}", cluster.member(0).client_url);
    let out = raftkvctl(&[&endpoint, "snapshot", "save", ours.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "raftkvctl snapshot save: {out:?}");
    assert!(stdout.contains(&format!("revision {revision}")), "{stdout}");
    assert!(stderr.contains("saving: 100%"), "no progress: {stderr}");
    assert!(
        std::fs::read(&ours).unwrap() == std::fs::read(&by_etcdctl).unwrap(),
        "the two saves of a cluster at rest differ"
    );

    let refused = dir.path().join("refused.db");
    let both = format!("--endpoints={},127.0.0.1:1", cluster.member(0).client_url);
    let unreachable = "--endpoints=127.0.0.1:1".to_string();
    for (flag, why) in [(both, "not multiple"), (unreachable, "could not connect")] {
        let out = raftkvctl(&[&flag, "snapshot", "save", refused.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{flag}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("refused"))
            .collect();
        assert!(left.is_empty(), "{flag}: left {left:?}");
    }
}
