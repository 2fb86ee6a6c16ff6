//! The quota drill (issue 7), on real etcd and on raftkv alike: a 3-member cluster with a
//! tiny `--quota-backend-bytes` fills up; NOSPACE is raised cluster-wide (every member
//! lists it and refuses writes with etcd's message) while reads and deletes still work;
//! compaction + defrag on every member + `alarm disarm` bring writes back, and nothing
//! written before is lost. Also `/health` fails on the alarm unless `exclude=NOSPACE`.

use std::time::Duration;

mod support;
use support::http::get as http_get;
use support::{json, Cluster, ClusterOptions, ServerBinary};

const QUOTA_BYTES: u64 = 3_000_000;
const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn poll(what: &str, ok: impl FnMut() -> bool) {
    support::poll_until(what, Duration::from_secs(20), ok);
}

fn quota_drill(binary: &ServerBinary) {
    let opts = ClusterOptions {
        size: 3,
        extra_args: vec![format!("--quota-backend-bytes={QUOTA_BYTES}")],
        ..ClusterOptions::default()
    };
    let c = Cluster::start(binary, &opts);
    let value = "x".repeat(100_000);
    let mut refused = None;
    for i in 0..200 {
        let out = c.ctl(i % 3, &["put", &format!("big{}", i % 3), &value]);
        if !out.success() {
            refused = Some(out);
            break;
        }
    }
    let refused = refused.expect("the quota never refused a write");
    assert!(refused.stderr.contains(NOSPACE), "{refused:?}");
    for i in 0..3 {
        poll("the alarm on every member", || {
            c.ctl(i, &["alarm", "list"]).out().contains("alarm:NOSPACE")
        });
        let out = c.ctl(i, &["put", "small", "v"]);
        assert!(
            !out.success() && out.stderr.contains(NOSPACE),
            "m{i}: {out:?}"
        );
    }
    let health = http_get(&c.member(0).client_url, "/health");
    assert!(
        health.contains("503") && health.contains("\"health\":\"false\""),
        "{health}"
    );
    let health = http_get(&c.member(0).client_url, "/health?exclude=NOSPACE");
    assert!(
        health.contains("200 OK") && health.contains("\"health\":\"true\""),
        "{health}"
    );

    let got = c
        .ctl_any(&["get", "big0", "--print-value-only"])
        .ok("read under NOSPACE");
    assert_eq!(got.out().trim().len(), value.len());
    assert_eq!(c.ctl_any(&["del", "big2"]).ok("delete").out().trim(), "1");

    let header = c.ctl_any(&["get", "big0", "-w", "json"]).ok("get");
    let revision = json::u64_first(header.out(), "revision")
        .unwrap()
        .to_string();
    c.ctl_any(&["compact", &revision, "--physical"])
        .ok("compact");
    for i in 0..3 {
        let out = c.ctl(i, &["defrag"]).ok("defrag");
        assert!(
            out.out().contains("Finished defragmenting etcd member"),
            "{out:?}"
        );
        poll("in-use size under the quota", || {
            let s = c.ctl(i, &["endpoint", "status", "-w", "json"]);
            json::u64_first(s.out(), "dbSizeInUse").is_some_and(|n| n < QUOTA_BYTES)
        });
    }
    let disarmed = c.ctl_any(&["alarm", "disarm"]).ok("disarm");
    assert!(disarmed.out().contains("alarm:NOSPACE"), "{disarmed:?}");
    for i in 0..3 {
        poll("the alarm gone from every member", || {
            let out = c.ctl(i, &["alarm", "list"]);
            out.success() && out.out().trim().is_empty()
        });
        c.ctl(i, &["put", &format!("after{i}"), "ok"])
            .ok("write after disarm");
    }
    for key in ["big0", "big1"] {
        let got = c.ctl_any(&["get", key, "--print-value-only"]).ok("read");
        assert_eq!(got.out().trim().len(), value.len(), "{key} lost");
    }
    let health = http_get(&c.member(0).client_url, "/health");
    assert!(health.contains("200 OK"), "{health}");
}

server_tests!(quota_drill);
