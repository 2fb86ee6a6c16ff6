//! Helpers shared by the `tests/mvcc_*.rs` integration tests: opening a sled backend
//! robustly and reading seeds from the environment. Test code only.

use std::path::Path;
use std::time::{Duration, Instant};

use raftkv::mvcc::{MvccError, SledBackend, SledConfig};

/// Open the sled backend in `dir`, retrying while a just-dropped handle of the same
/// database still holds its file lock: sled 0.34's flusher thread releases it after the
/// last handle is gone, not when it drops (spacejam/sled#1234; see
/// /work/notes/mvcc-findings.md F1). Any other error, or a lock held for 10 s, panics.
pub fn open_sled(dir: &Path, config: &SledConfig) -> SledBackend {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledBackend::open(dir, config.clone()) {
            Ok(backend) => return backend,
            Err(MvccError::Backend(msg))
                if msg.contains("could not acquire lock") && Instant::now() < deadline =>
            {
                // Waiting for another thread of this process to let go of a file lock;
                // there is nothing to wait on but time.
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("open sled backend in {}: {e}", dir.display()),
        }
    }
}

/// The number in environment variable `name`, if set.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}
