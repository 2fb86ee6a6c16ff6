//! The multi-version concurrency control store: etcd's revisioned key-value model.
#![deny(missing_docs)]
