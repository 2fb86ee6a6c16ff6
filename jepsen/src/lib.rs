//! A Jepsen-style harness for raftkv (and any binary that takes etcd's flags).
//!
//! It starts real member processes, drives concurrent clients through the etcd v3 API while
//! a nemesis injects real faults (kill -9, SIGSTOP, network partitions, latency, loss),
//! records what every client saw in a [`history::History`], and asks the [`checker`] whether
//! that history is linearizable. See `docs/testing.md` for how to run it.

pub mod checker;
pub mod history;
