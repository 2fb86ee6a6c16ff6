//! The `raftkv` command line: etcd's flag names and defaults, Go's `-flag` spelling,
//! etcd flags we do not implement (accepted, each named in a warning), and refusals with
//! etcd's wording. Environment variables are in `api_flags_env.rs` (they are process-wide,
//! so they get a test binary of their own).

use std::time::Duration;

use raftkv::api::{ConfigError, Settings};
use raftkv::server::ClusterState;

fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
    Settings::parse_from(std::iter::once("raftkv").chain(args.iter().copied()))
}

#[test]
fn no_flags_is_a_single_member_on_the_default_ports() {
    let s = parse(&[]).unwrap();
    assert_eq!(s.server.name, "default");
    assert_eq!(s.server.data_dir.to_str(), Some("default.raftkv"));
    assert_eq!(s.listen_client, vec!["127.0.0.1:2379".parse().unwrap()]);
    assert_eq!(s.listen_peer, vec!["127.0.0.1:2380".parse().unwrap()]);
    assert!(s.listen_metrics.is_empty());
    let cluster = vec![(
        "default".to_string(),
        vec!["http://localhost:2380".to_string()],
    )];
    assert_eq!(s.server.initial_cluster, cluster);
    assert_eq!(s.server.initial_cluster_state, ClusterState::New);
    assert_eq!(s.server.initial_cluster_token, "etcd-cluster");
    assert_eq!(
        s.server.advertise_client_urls,
        vec!["http://localhost:2379".to_string()]
    );
    assert_eq!(s.server.heartbeat_interval, Duration::from_millis(100));
    assert_eq!(s.server.election_timeout, Duration::from_millis(1000));
    assert_eq!(s.server.snapshot_count, 10_000);
    assert_eq!(s.server.max_request_bytes, 1_572_864);
    assert_eq!(s.server.max_txn_ops, 128);
    assert_eq!(s.server.quota_backend_bytes, 0);
    assert_eq!(s.log_level, "info");
    assert_eq!(s.grpc_keepalive_interval, Some(Duration::from_secs(7200)));
    assert_eq!(s.grpc_keepalive_timeout, Duration::from_secs(20));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_three_member_cluster_as_kubeadm_would_write_it() {
    let s = parse(&[
        "--name=n2",
        "--data-dir",
        "/var/lib/n2",
        "--listen-client-urls=http://127.0.0.1:12379,http://0.0.0.0:22379",
        "--advertise-client-urls=http://10.0.0.2:2379",
        "--listen-peer-urls=http://127.0.0.1:12380",
        "--initial-advertise-peer-urls=http://127.0.0.1:12380",
        "--initial-cluster=n1=http://127.0.0.1:2380,n2=http://127.0.0.1:12380",
        "--initial-cluster-state=existing",
        "--initial-cluster-token=tok",
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--snapshot-count=10000",
        "--max-request-bytes=100",
        "--max-txn-ops=7",
        "--quota-backend-bytes=1024",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--log-level=debug",
        "--grpc-keepalive-interval=0",
    ])
    .unwrap();
    assert_eq!(s.server.name, "n2");
    assert_eq!(s.server.data_dir.to_str(), Some("/var/lib/n2"));
    let client: Vec<std::net::SocketAddr> = vec![
        "127.0.0.1:12379".parse().unwrap(),
        "0.0.0.0:22379".parse().unwrap(),
    ];
    assert_eq!(s.listen_client, client);
    assert_eq!(s.server.initial_cluster.len(), 2);
    assert_eq!(s.server.initial_cluster[1].0, "n2");
    assert_eq!(s.server.initial_cluster_state, ClusterState::Existing);
    assert_eq!(s.server.initial_cluster_token, "tok");
    assert_eq!(
        s.server.advertise_client_urls,
        vec!["http://10.0.0.2:2379".to_string()]
    );
    assert_eq!(
        s.server.advertise_peer_urls,
        vec!["http://127.0.0.1:12380".to_string()]
    );
    assert_eq!(s.server.heartbeat_interval, Duration::from_millis(50));
    assert_eq!(s.server.election_timeout, Duration::from_millis(500));
    assert_eq!((s.server.max_request_bytes, s.server.max_txn_ops), (100, 7));
    assert_eq!(s.server.quota_backend_bytes, 1024);
    assert_eq!(s.listen_metrics, vec!["127.0.0.1:2381".parse().unwrap()]);
    assert_eq!(s.log_level, "debug");
    assert_eq!(s.grpc_keepalive_interval, None);
}

#[test]
fn a_named_member_without_initial_cluster_bootstraps_alone_at_its_peer_urls() {
    let s = parse(&[
        "--name",
        "solo",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:7",
    ])
    .unwrap();
    let cluster = vec![("solo".to_string(), vec!["http://127.0.0.1:7".to_string()])];
    assert_eq!(s.server.initial_cluster, cluster);
    assert_eq!(s.server.data_dir.to_str(), Some("solo.raftkv"));
}

#[test]
fn go_single_dash_flags_are_accepted() {
    let s = parse(&["-name", "x", "-snapshot-count=5", "-client-cert-auth"]).unwrap();
    assert_eq!(s.server.name, "x");
    assert_eq!(s.server.snapshot_count, 5);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
}

#[test]
fn unimplemented_etcd_flags_are_accepted_and_each_named_in_a_warning() {
    let s = parse(&[
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
        "--key-file",
        "/etc/kubernetes/pki/etcd/server.key",
        "--client-cert-auth=true",
        "--peer-client-cert-auth",
        "--name=n1",
        "--experimental-compact-hash-check-enabled",
        "--max-learners=1",
        "--experimental-memory-mlock=true",
        "--v2-deprecation=not-yet",
    ])
    .unwrap();
    // A bool flag without `=` must not swallow the next argument.
    assert_eq!(s.server.name, "n1");
    let named = |flag: &str| s.warnings.iter().any(|w| w.contains(&format!("--{flag}=")));
    for flag in [
        "cert-file",
        "key-file",
        "client-cert-auth",
        "peer-client-cert-auth",
        "experimental-compact-hash-check-enabled",
        "max-learners",
        "experimental-memory-mlock",
        "v2-deprecation",
    ] {
        assert!(named(flag), "no warning names --{flag}: {:?}", s.warnings);
    }
    assert_eq!(s.warnings.len(), 8, "{:?}", s.warnings);
}

#[test]
fn corruption_check_flags_are_implemented_in_every_spelling() {
    let s = parse(&[]).unwrap();
    assert!(!s.initial_corrupt_check);
    assert_eq!(s.corrupt_check_time, None, "off by default");
    let s = parse(&[
        "--experimental-initial-corrupt-check",
        "--name=n1",
        "--experimental-corrupt-check-time=3m",
    ])
    .unwrap();
    // A bool flag without `=` must not swallow the next argument.
    assert_eq!(s.server.name, "n1");
    assert!(s.initial_corrupt_check);
    assert_eq!(s.corrupt_check_time, Some(Duration::from_secs(180)));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let s = parse(&["--experimental-initial-corrupt-check=false"]).unwrap();
    assert!(!s.initial_corrupt_check);
    // etcd 3.6's spellings: the feature gate kubeadm writes, and the plain check time.
    let s = parse(&[
        "--feature-gates=InitialCorruptCheck=true,StopGRPCServiceOnDefrag=false",
        "--corrupt-check-time=10s",
    ])
    .unwrap();
    assert!(s.initial_corrupt_check);
    assert_eq!(s.corrupt_check_time, Some(Duration::from_secs(10)));
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("StopGRPCServiceOnDefrag=false"));
    let s = parse(&["--experimental-corrupt-check-time=0"]).unwrap();
    assert_eq!(s.corrupt_check_time, None);
    for bad in [
        "--experimental-corrupt-check-time=soon",
        "--experimental-initial-corrupt-check=yes",
        "--feature-gates=InitialCorruptCheck",
        "--feature-gates=InitialCorruptCheck=maybe",
    ] {
        assert!(parse(&[bad]).is_err(), "{bad} was accepted");
    }
}

#[test]
fn auto_compaction_flags_are_implemented_not_ignored() {
    use raftkv::server::AutoCompaction;
    let s = parse(&["--auto-compaction-retention=1"]).unwrap();
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(s.auto_compaction, Some(AutoCompaction::Periodic(hour)));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let s = parse(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=500",
    ]);
    assert_eq!(
        s.unwrap().auto_compaction,
        Some(AutoCompaction::Revision(500))
    );
    assert!(parse(&[
        "--auto-compaction-mode=weekly",
        "--auto-compaction-retention=1"
    ])
    .is_err());
}

#[test]
fn https_listeners_are_served_in_plain_http_with_a_warning() {
    let s = parse(&["--listen-client-urls=https://127.0.0.1:3379"]).unwrap();
    assert_eq!(s.listen_client, vec!["127.0.0.1:3379".parse().unwrap()]);
    assert!(
        s.warnings.iter().any(|w| w.contains("TLS")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn bad_values_are_refused_with_etcds_wording() {
    let err = |args: &[&str]| parse(args).unwrap_err().to_string();
    assert!(err(&["--election-timeout=400"]).contains("should be at least as 5 times as"));
    assert!(err(&["--election-timeout=60000"]).contains("less than 50000ms"));
    assert!(err(&["--listen-client-urls=http://example.com:1"]).contains("expected IP"));
    assert!(err(&["--initial-cluster-state=maybe"]).contains("--initial-cluster-state"));
    assert!(err(&["--log-level=loud"]).contains("log level"));
    assert!(err(&["--initial-cluster=nourl"]).contains("name=url"));
    assert!(err(&["--snapshot-count=many"]).contains("snapshot-count"));
    assert!(err(&["--grpc-keepalive-timeout=5"]).contains("invalid duration"));
}

#[test]
fn a_repeated_flag_takes_its_last_value_as_in_go() {
    let s = parse(&["--name=first", "--name=second"]).unwrap();
    assert_eq!(s.server.name, "second");
}

#[test]
fn flags_that_are_not_etcds_are_errors() {
    assert!(matches!(
        parse(&["--no-such-flag=1"]),
        Err(ConfigError::Clap(_))
    ));
}

#[test]
fn the_stale_reads_fault_switch_is_off_by_default_and_hidden_from_help() {
    assert!(!parse(&[]).unwrap().server.unsafe_test_stale_reads);
    assert!(
        parse(&["--unsafe-test-stale-reads"])
            .unwrap()
            .server
            .unsafe_test_stale_reads
    );
    let help = match parse(&["--help"]) {
        Err(ConfigError::Clap(e)) => e.to_string(),
        other => panic!("--help should end in clap's help text, got {other:?}"),
    };
    assert!(
        help.contains("--snapshot-count"),
        "not the help text: {help}"
    );
    assert!(
        !help.contains("unsafe"),
        "the fault switch shows in --help: {help}"
    );
}

#[test]
fn watch_progress_notify_interval_takes_both_spellings_and_defaults_to_ten_minutes() {
    let default = parse(&[]).unwrap();
    assert_eq!(
        default.watch_progress_notify_interval,
        Duration::from_secs(600)
    );
    let plain = parse(&["--watch-progress-notify-interval=5s"]).unwrap();
    assert_eq!(plain.watch_progress_notify_interval, Duration::from_secs(5));
    let old = parse(&["--experimental-watch-progress-notify-interval=250ms"]).unwrap();
    assert_eq!(
        old.watch_progress_notify_interval,
        Duration::from_millis(250)
    );
    assert!(old.warnings.is_empty(), "{:?}", old.warnings);
}
