//! etcd flags raftkv accepts but does not implement yet, so that deployment scripts written
//! for etcd (kubeadm's static pod, systemd units) start raftkv unchanged. Each one present on
//! the command line or in its `ETCD_*` variable is named in a warning at start; none is
//! ever silently dropped, and none is an error.
//!
//! Implemented flags live in `config.rs`; a flag moves there when its feature arrives.

/// How an ignored flag takes its value, as Go's `flag` package parses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--flag` or `--flag=true|false` (never a separate value argument).
    Bool,
    /// `--flag value` or `--flag=value`.
    Value,
}

/// Every accepted-but-ignored etcd 3.4/3.5/3.6 flag.
pub const IGNORED_FLAGS: &[(&str, Kind)] = &[
    // Storage layout and tuning.
    ("wal-dir", Kind::Value),
    ("max-snapshots", Kind::Value),
    ("max-wals", Kind::Value),
    ("backend-batch-interval", Kind::Value),
    ("backend-batch-limit", Kind::Value),
    ("backend-bbolt-freelist-type", Kind::Value),
    ("max-concurrent-streams", Kind::Value),
    ("initial-election-tick-advance", Kind::Bool),
    ("unsafe-no-fsync", Kind::Bool),
    ("force-new-cluster", Kind::Bool),
    ("strict-reconfig-check", Kind::Bool),
    ("pre-vote", Kind::Bool),
    ("enable-v2", Kind::Bool),
    ("v2-deprecation", Kind::Value),
    ("max-learners", Kind::Value),
    ("socket-reuse-port", Kind::Bool),
    ("socket-reuse-address", Kind::Bool),
    ("listen-client-http-urls", Kind::Value),
    // Discovery and proxy.
    ("discovery", Kind::Value),
    ("discovery-fallback", Kind::Value),
    ("discovery-proxy", Kind::Value),
    ("discovery-srv", Kind::Value),
    ("discovery-srv-name", Kind::Value),
    ("proxy", Kind::Value),
    ("proxy-failure-wait", Kind::Value),
    ("proxy-refresh-interval", Kind::Value),
    ("proxy-dial-timeout", Kind::Value),
    ("proxy-write-timeout", Kind::Value),
    ("proxy-read-timeout", Kind::Value),
    // TLS.
    ("cert-file", Kind::Value),
    ("key-file", Kind::Value),
    ("client-cert-auth", Kind::Bool),
    ("client-crl-file", Kind::Value),
    ("client-cert-allowed-hostname", Kind::Value),
    ("trusted-ca-file", Kind::Value),
    ("auto-tls", Kind::Bool),
    ("peer-cert-file", Kind::Value),
    ("peer-key-file", Kind::Value),
    ("peer-client-cert-auth", Kind::Bool),
    ("peer-trusted-ca-file", Kind::Value),
    ("peer-cert-allowed-cn", Kind::Value),
    ("peer-cert-allowed-hostname", Kind::Value),
    ("peer-auto-tls", Kind::Bool),
    ("peer-crl-file", Kind::Value),
    ("self-signed-cert-validity", Kind::Value),
    ("cipher-suites", Kind::Value),
    ("tls-min-version", Kind::Value),
    ("tls-max-version", Kind::Value),
    ("cors", Kind::Value),
    ("host-whitelist", Kind::Value),
    // Auth, profiling, metrics detail, logging outputs.
    ("auth-token", Kind::Value),
    ("bcrypt-cost", Kind::Value),
    ("auth-token-ttl", Kind::Value),
    ("enable-pprof", Kind::Bool),
    ("metrics", Kind::Value),
    ("logger", Kind::Value),
    ("log-outputs", Kind::Value),
    ("log-format", Kind::Value),
    ("enable-log-rotation", Kind::Bool),
    ("log-rotation-config-json", Kind::Value),
    ("log-package-levels", Kind::Value),
    ("debug", Kind::Bool),
    // Experimental flags (etcd 3.4/3.5 spellings).
    ("experimental-compact-hash-check-enabled", Kind::Bool),
    ("experimental-compact-hash-check-time", Kind::Value),
    ("experimental-enable-v2v3", Kind::Value),
    ("experimental-backend-bbolt-freelist-type", Kind::Value),
    ("experimental-enable-lease-checkpoint", Kind::Bool),
    ("experimental-enable-lease-checkpoint-persist", Kind::Bool),
    ("experimental-compaction-batch-limit", Kind::Value),
    ("experimental-compaction-sleep-interval", Kind::Value),
    ("experimental-peer-skip-client-san-verification", Kind::Bool),
    ("experimental-warning-unary-request-duration", Kind::Value),
    ("experimental-txn-mode-write-with-shared-buffer", Kind::Bool),
    (
        "experimental-bootstrap-defrag-threshold-megabytes",
        Kind::Value,
    ),
    ("experimental-max-learners", Kind::Value),
    ("experimental-snapshot-catchup-entries", Kind::Value),
    ("experimental-downgrade-check-time", Kind::Value),
    ("experimental-memory-mlock", Kind::Bool),
    ("experimental-wait-cluster-ready-timeout", Kind::Value),
    ("experimental-stop-grpc-service-on-defrag", Kind::Bool),
    ("experimental-enable-distributed-tracing", Kind::Bool),
    ("experimental-distributed-tracing-address", Kind::Value),
    ("experimental-distributed-tracing-service-name", Kind::Value),
    ("experimental-distributed-tracing-instance-id", Kind::Value),
    (
        "experimental-distributed-tracing-sampling-rate",
        Kind::Value,
    ),
];

/// The `ETCD_*` environment variable etcd reads for `flag` (`cert-file` -> `ETCD_CERT_FILE`).
pub fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.replace('-', "_").to_uppercase())
}
