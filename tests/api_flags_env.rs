//! etcd reads every flag from `ETCD_<FLAG>` too (command line wins), and warns about
//! `ETCD_*` variables that match no flag. One test only: the environment is process-wide.

use std::time::Duration;

use raftkv::api::Settings;

#[test]
fn etcd_environment_variables_set_flags_and_unknown_ones_are_warned() {
    let vars = [
        ("ETCD_NAME", "from-env"),
        ("ETCD_SNAPSHOT_COUNT", "42"),
        ("ETCD_HEARTBEAT_INTERVAL", "20"),
        ("ETCD_ELECTION_TIMEOUT", "200"),
        ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:4379"),
        ("ETCD_INITIAL_CLUSTER", "from-env=http://127.0.0.1:4380"),
        ("ETCD_CERT_FILE", "/x.crt"),
        ("ETCD_NOT_A_FLAG", "1"),
        ("ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", "true"),
        ("ETCD_CORRUPT_CHECK_TIME", "2m"),
    ];
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let s = Settings::parse_from(["raftkv", "--snapshot-count=7"]).unwrap();
    assert_eq!(s.server.name, "from-env");
    assert_eq!(
        s.server.snapshot_count, 7,
        "the command line wins over the environment"
    );
    assert_eq!(s.server.heartbeat_interval, Duration::from_millis(20));
    assert_eq!(s.server.election_timeout, Duration::from_millis(200));
    assert_eq!(s.listen_client, vec!["127.0.0.1:4379".parse().unwrap()]);
    assert_eq!(s.server.initial_cluster[0].0, "from-env");
    assert!(s.initial_corrupt_check);
    assert_eq!(s.corrupt_check_time, Some(Duration::from_secs(120)));
    let warned = |needle: &str| s.warnings.iter().any(|w| w.contains(needle));
    assert!(warned("--cert-file=/x.crt"), "{:?}", s.warnings);
    assert!(warned("ETCD_NOT_A_FLAG"), "{:?}", s.warnings);
    assert!(!warned("ETCD_NAME"), "{:?}", s.warnings);
    assert!(!warned("ETCD_CORRUPT_CHECK_TIME"), "{:?}", s.warnings);
    for (k, _) in vars {
        std::env::remove_var(k);
    }
}
