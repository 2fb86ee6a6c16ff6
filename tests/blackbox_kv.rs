//! Black-box KV semantics of a single member, driven through `etcdctl` only.
//!
//! Every test body takes the server binary and runs twice (see `server_tests!`): against real
//! etcd 3.4 (the reference: proves each assertion is etcd's behaviour) and against raftkv
//! (skipped until the binary exists in the build). What is proven:
//! - a fresh store is at revision 1; each write request advances the revision by exactly
//!   one; reads, deletes of nothing and failed requests do not;
//! - the header revision a client sees never goes backwards over many requests from several
//!   concurrent clients;
//! - a restart (graceful, then kill -9) keeps every acknowledged key and the revision;
//! - bad input is refused with etcd's exact message, leaves the data untouched, and the
//!   server keeps serving.

mod support;

use support::{json, Cluster, ClusterOptions, CtlOutput, ServerBinary};

server_tests!(
    revision_starts_at_one_and_counts_writes,
    header_revision_never_goes_backwards,
    restart_keeps_data_and_revision,
    bad_input_leaves_data_untouched,
);

fn single(binary: &ServerBinary) -> Cluster {
    Cluster::start(binary, &ClusterOptions::default())
}

/// header.revision of a `-w json` answer (the only `"revision"` key in put/get/del output).
#[track_caller]
fn header_revision(out: &CtlOutput) -> u64 {
    assert!(out.success(), "request failed: {out:?}");
    json::u64_first(&out.stdout, "revision").unwrap_or_else(|| panic!("no revision: {out:?}"))
}

/// The store's current revision as seen by a read.
fn current_revision(cluster: &Cluster) -> u64 {
    header_revision(&cluster.ctl(0, &["get", "no-such-key", "-w", "json"]))
}

fn revision_starts_at_one_and_counts_writes(binary: &ServerBinary) {
    let cluster = single(binary);
    assert_eq!(
        current_revision(&cluster),
        1,
        "a fresh store is at revision 1"
    );

    eprintln!("phase: puts advance by one, the key's create/mod/version follow");
    assert_eq!(
        header_revision(&cluster.ctl(0, &["put", "a", "1", "-w", "json"])),
        2
    );
    assert_eq!(
        header_revision(&cluster.ctl(0, &["put", "a", "2", "-w", "json"])),
        3
    );
    let get = cluster.ctl(0, &["get", "a", "-w", "json"]).ok("get a");
    assert_eq!(
        json::u64_first(&get.stdout, "create_revision"),
        Some(2),
        "{get:?}"
    );
    assert_eq!(
        json::u64_first(&get.stdout, "mod_revision"),
        Some(3),
        "{get:?}"
    );
    assert_eq!(json::u64_first(&get.stdout, "version"), Some(2), "{get:?}");

    eprintln!("phase: reads and deletes of nothing do not advance");
    cluster.ctl(0, &["get", "", "--prefix"]).ok("get all");
    let del_nothing = cluster.ctl(0, &["del", "missing", "-w", "json"]);
    assert_eq!(
        header_revision(&del_nothing),
        3,
        "deleting nothing is not a write"
    );
    assert_eq!(current_revision(&cluster), 3);

    eprintln!("phase: a delete and a multi-write txn are one revision each");
    assert_eq!(
        header_revision(&cluster.ctl(0, &["del", "a", "-w", "json"])),
        4
    );
    let txn = cluster.ctl_stdin(0, &["txn", "-w", "json"], b"\nput b 1\nput c 1\n\n\n");
    assert!(txn.success(), "{txn:?}");
    assert_eq!(json::u64_first(&txn.stdout, "revision"), Some(5), "{txn:?}");
    assert_eq!(current_revision(&cluster), 5);
    let get_c = cluster.ctl(0, &["get", "c", "-w", "json"]).ok("get c");
    assert_eq!(
        json::u64_first(&get_c.stdout, "mod_revision"),
        Some(5),
        "{get_c:?}"
    );

    eprintln!("phase: version restarts at 1 after a delete");
    cluster.ctl(0, &["put", "a", "3"]).ok("re-create a");
    let get = cluster.ctl(0, &["get", "a", "-w", "json"]).ok("get a");
    assert_eq!(json::u64_first(&get.stdout, "version"), Some(1), "{get:?}");
    assert_eq!(
        json::u64_first(&get.stdout, "create_revision"),
        Some(6),
        "{get:?}"
    );

    eprintln!("phase: failed requests do not advance");
    assert!(!cluster.ctl(0, &["put", "", "x"]).success());
    assert!(!cluster
        .ctl(0, &["put", "missing", "--ignore-value"])
        .success());
    assert_eq!(current_revision(&cluster), 6);
}

fn header_revision_never_goes_backwards(binary: &ServerBinary) {
    const CLIENTS: usize = 3;
    const REQUESTS_PER_CLIENT: usize = 40;
    let cluster = single(binary);
    let url = cluster.member(0).client_url.clone();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::with_capacity(REQUESTS_PER_CLIENT);
                for n in 0..REQUESTS_PER_CLIENT {
                    let key = format!("c{client}/{n}");
                    // Clients alternate writes and reads of everyone's keys.
                    let args: Vec<&str> = if n % 2 == 0 {
                        vec!["put", &key, "v", "-w", "json"]
                    } else {
                        vec!["get", "c", "--prefix", "--keys-only", "-w", "json"]
                    };
                    let out = support::etcdctl::run(&url, &args, None);
                    seen.push(header_revision(&out));
                }
                seen
            })
        })
        .collect();
    for (client, thread) in threads.into_iter().enumerate() {
        let seen = thread.join().expect("client thread");
        for pair in seen.windows(2) {
            assert!(
                pair[0] <= pair[1],
                "client {client} saw the revision go back: {seen:?}"
            );
        }
    }
    let writes = (CLIENTS * REQUESTS_PER_CLIENT).div_ceil(2) as u64;
    assert_eq!(
        current_revision(&cluster),
        1 + writes,
        "one revision per put"
    );
}

fn restart_keeps_data_and_revision(binary: &ServerBinary) {
    let mut cluster = single(binary);
    for n in 0..20 {
        cluster
            .ctl(0, &["put", &format!("k{n:02}"), &format!("v{n}")])
            .ok("put");
    }
    cluster.ctl(0, &["del", "k05"]).ok("del");
    let before = cluster
        .ctl(0, &["get", "k", "--prefix", "-w", "json"])
        .ok("get");
    assert_eq!(header_revision(&before), 22);

    eprintln!("phase: graceful stop and restart");
    cluster.stop(0);
    cluster.restart(0);
    let after = cluster
        .ctl(0, &["get", "k", "--prefix", "-w", "json"])
        .ok("get");
    assert_eq!(strip_header(&after.stdout), strip_header(&before.stdout));
    assert_eq!(
        header_revision(&after),
        22,
        "the revision survives a restart"
    );

    eprintln!("phase: kill -9 right after acknowledged writes, restart");
    cluster.ctl(0, &["put", "k99", "last"]).ok("put");
    cluster.kill(0);
    cluster.restart(0);
    assert_eq!(
        cluster.ctl(0, &["get", "k99", "--print-value-only"]).out(),
        "last"
    );
    assert_eq!(current_revision(&cluster), 23);
    assert_eq!(
        header_revision(&cluster.ctl(0, &["put", "k100", "x", "-w", "json"])),
        24
    );
}

/// The JSON answer without its header (member id and raft term may change on restart).
fn strip_header(text: &str) -> &str {
    text.find("\"kvs\"").map_or(text, |at| &text[at..])
}

/// (etcdctl arguments, stdin, the error line etcdctl prints) for requests etcd refuses.
fn bad_requests() -> Vec<(Vec<String>, Vec<u8>, &'static str)> {
    let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    let mut too_many_ops = String::from("\n");
    for n in 0..129 {
        too_many_ops.push_str(&format!("put op{n} v\n"));
    }
    too_many_ops.push_str("\n\n");
    vec![
        (
            vec!["put".into(), "".into(), "x".into()],
            vec![],
            "etcdserver: key is not provided",
        ),
        (
            args("put missing --ignore-value"),
            vec![],
            "etcdserver: key not found",
        ),
        (
            args("put base v --lease=1234"),
            vec![],
            "etcdserver: requested lease not found",
        ),
        (
            args("put base v --lease=1234 --ignore-lease"),
            vec![],
            "etcdserver: lease is provided",
        ),
        (
            args("put big"),
            vec![b'x'; 1_600_000],
            "etcdserver: request is too large",
        ),
        (
            args("txn"),
            b"\nput d 1\nput d 2\n\n\n".to_vec(),
            "duplicate key given in txn request",
        ),
        (
            args("txn"),
            too_many_ops.into_bytes(),
            "too many operations in txn request",
        ),
        (
            args("compact 1000"),
            vec![],
            "mvcc: required revision is a future revision",
        ),
        (
            args("get base --rev=1000"),
            vec![],
            "mvcc: required revision is a future revision",
        ),
    ]
}

fn bad_input_leaves_data_untouched(binary: &ServerBinary) {
    let cluster = single(binary);
    cluster.ctl(0, &["put", "base", "v0"]).ok("put");
    cluster.ctl(0, &["put", "other", "v1"]).ok("put");
    let snapshot = || {
        cluster
            .ctl(0, &["get", "", "--from-key", "-w", "json"])
            .ok("get")
    };
    let before = snapshot();
    for (args, stdin, expected) in bad_requests() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cluster.ctl_stdin(0, &args, &stdin);
        assert!(!out.success(), "{args:?} must fail: {out:?}");
        assert!(
            out.stderr.contains(expected),
            "{args:?}: want {expected:?}, got {out:?}"
        );
        assert_eq!(snapshot(), before, "{args:?} changed the data");
    }
    eprintln!("phase: the server still serves writes and reads");
    cluster
        .ctl(0, &["put", "base", "v2"])
        .ok("put after bad input");
    assert_eq!(
        cluster.ctl(0, &["get", "base", "--print-value-only"]).out(),
        "v2"
    );
}
