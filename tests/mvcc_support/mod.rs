//! Helpers shared by the `tests/mvcc_*.rs` integration tests: opening a sled backend and
//! reading seeds from the environment. Test code only.

use std::path::Path;

use raftkv::mvcc::{SledBackend, SledConfig};

/// Open the sled backend in `dir`, panicking with the directory on failure. No retry: a
/// store dropped a moment ago must reopen at once (see `tests/mvcc_reopen.rs`).
pub fn open_sled(dir: &Path, config: &SledConfig) -> SledBackend {
    SledBackend::open(dir, config.clone())
        .unwrap_or_else(|e| panic!("open sled backend in {}: {e}", dir.display()))
}

/// The number in environment variable `name`, if set.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}
