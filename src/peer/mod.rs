//! The peer transport: how members exchange Raft messages and snapshots over gRPC.
//!
//! - [`convert`]: `raft::Message` <-> `raftkvpb::Message`, validating what peers send.
//!
//! This module moves bytes between members; it never interprets the Raft protocol (the
//! core does) nor touches the WAL or the store (the server does).

pub mod convert;

#[cfg(test)]
mod convert_tests;
