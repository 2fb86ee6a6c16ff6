//! The client-facing side of a member: etcd's gRPC services, the HTTP routes, the
//! command line and the process lifecycle of the `raftkv` binary.
//!
//! - `kv`, `cluster`, `maintenance`, `lease`, `watch` (+ `watch_reply`): tonic services that hand
//!   requests to [`crate::server::EtcdServer`] and map its errors (`error`) to the exact
//!   gRPC status etcd sends.
//! - `grpc_health`: `grpc.health.v1`, serving while a leader is known.
//! - [`http`]: `/health`, `/livez`, `/readyz`, `/version`, `/metrics`.
//! - [`serve`]: one listener for gRPC and HTTP; the metrics listeners. `authority` repairs
//!   the `:authority` grpc-go sends for `etcdctl --endpoints=http://...`.
//! - [`config`], `flag_values`, `ignored_flags`: etcd's flags and `ETCD_*` variables.
//! - [`corrupt_check`]: the initial and periodic corruption checks (peers' HashKV).
//! - [`logging`], [`run`]: what `src/bin/raftkv.rs` calls.
//!
//! This layer must not decide anything about requests: validation, consensus and storage
//! semantics belong to the server, so every way in (gRPC, tests) meets the same rules.

mod authority;
mod cluster;
pub mod config;
pub mod corrupt_check;
mod error;
mod flag_values;
mod grpc_health;
pub mod http;
mod ignored_flags;
mod kv;
mod leader;
mod learner;
mod lease;
pub mod logging;
mod maintenance;
pub mod run;
mod watch;
mod watch_reply;

pub mod serve;
mod snapshot_stream;

pub use config::{ConfigError, Settings};
pub use error::unimplemented;
pub use flag_values::{parse_go_duration, parse_initial_cluster, parse_listen_url, ListenUrl};
