//! The write-ahead log: the durable record of Raft entries and hard state.
#![deny(missing_docs)]
