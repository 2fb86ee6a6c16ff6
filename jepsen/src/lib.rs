//! A Jepsen-style harness for raftkv (and any binary that takes etcd's flags).
//!
//! It starts real member processes ([`cluster`]) on their own network ([`net`]), drives
//! concurrent clients through the etcd v3 API ([`workload`], [`client`]) while a
//! [`nemesis`] injects real faults (kill -9, SIGSTOP, network partitions, packet loss),
//! records what every client saw in a [`history::History`], asks the [`checker`] whether it
//! is linearizable, and writes a [`report`]. [`run`] strings these together; `main.rs` is
//! the CLI. See `docs/testing.md` for how to run it.

pub mod checker;
pub mod client;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod workload;
