//! The `jepsen` CLI: run a campaign against a binary that takes etcd's flags.
fn main() {}
