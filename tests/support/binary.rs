//! Finding the programs the black-box tests run: the server under test (real etcd or
//! raftkv) and `etcdctl`.
//!
//! Rules, so a missing tool never turns into a silently green run:
//! - etcd or etcdctl missing: the test prints a loud SKIP line and returns, except under
//!   `CI=true`, where it fails (CI machines must have the reference installed).
//! - raftkv missing: SKIP (the binary lands with the server branch; once it exists cargo
//!   sets `CARGO_BIN_EXE_raftkv` at compile time and the raftkv tests run).
//!
//! Lookup order for raftkv: `RAFTKV_BIN` (runtime, e.g. to point the tests at a release
//! build), `CARGO_BIN_EXE_raftkv` (runtime, then compile time). The shared target directory
//! is deliberately NOT searched: it may hold a `raftkv` built from another branch, and a test
//! run must test the code it was built from.
//!
//! Lookup order for etcd / etcdctl: `ETCD_BIN` / `ETCDCTL_BIN`, then `PATH`.

use std::path::{Path, PathBuf};

/// Which server implementation a binary is; the harness passes both the same etcd flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// Real etcd 3.4: the reference.
    Etcd,
    /// Our implementation.
    Raftkv,
}

/// A server binary to run.
#[derive(Clone, Debug)]
pub struct ServerBinary {
    /// Which implementation it is (used for log file names and messages only).
    pub kind: ServerKind,
    /// Absolute path to the executable.
    pub path: PathBuf,
}

impl ServerBinary {
    /// Short name for messages and file names: `etcd` or `raftkv`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            ServerKind::Etcd => "etcd",
            ServerKind::Raftkv => "raftkv",
        }
    }
}

/// Real etcd, if installed (`ETCD_BIN`, then `PATH`).
pub fn etcd() -> Option<ServerBinary> {
    let path = from_env("ETCD_BIN").or_else(|| in_path("etcd"))?;
    Some(ServerBinary {
        kind: ServerKind::Etcd,
        path,
    })
}

/// The raftkv binary, if this build has one (see the module docs for the lookup order).
pub fn raftkv() -> Option<ServerBinary> {
    let path = from_env("RAFTKV_BIN")
        .or_else(|| from_env("CARGO_BIN_EXE_raftkv"))
        .or_else(|| option_env!("CARGO_BIN_EXE_raftkv").map(PathBuf::from))
        .filter(|p| p.is_file())?;
    Some(ServerBinary {
        kind: ServerKind::Raftkv,
        path,
    })
}

/// The `etcdctl` binary, if installed (`ETCDCTL_BIN`, then `PATH`).
pub fn etcdctl_path() -> Option<PathBuf> {
    from_env("ETCDCTL_BIN").or_else(|| in_path("etcdctl"))
}

/// etcd and etcdctl for a test, or `None` after a loud skip message. Panics under `CI=true`.
pub fn require_etcd() -> Option<ServerBinary> {
    let binary = etcd();
    if binary.is_none() || etcdctl_path().is_none() {
        skip_or_fail("etcd and etcdctl (3.4) must be installed (or set ETCD_BIN/ETCDCTL_BIN)");
        return None;
    }
    binary
}

/// raftkv and etcdctl for a test, or `None` after a loud skip message. A missing raftkv
/// binary is always a skip (it only happens on branches without the server); a missing
/// etcdctl fails under `CI=true`.
pub fn require_raftkv() -> Option<ServerBinary> {
    if etcdctl_path().is_none() {
        skip_or_fail("etcdctl (3.4) must be installed (or set ETCDCTL_BIN)");
        return None;
    }
    let binary = raftkv();
    if binary.is_none() {
        loud(
            "SKIP: no raftkv binary in this build (CARGO_BIN_EXE_raftkv unset); \
             set RAFTKV_BIN=/path/to/raftkv to run these tests against one",
        );
    }
    binary
}

/// Both etcd (the reference) and raftkv, for the differential test.
pub fn require_etcd_and_raftkv() -> Option<(ServerBinary, ServerBinary)> {
    let etcd = require_etcd()?;
    let raftkv = require_raftkv()?;
    Some((etcd, raftkv))
}

fn skip_or_fail(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {what}");
    }
    loud(&format!("SKIP: {what}; this test did NOT run"));
}

/// Writes straight to the process's stderr: the test harness captures `eprintln!` of
/// passing tests, and a skip must be seen.
fn loud(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** {message} ***\n");
}

fn from_env(var: &str) -> Option<PathBuf> {
    let value = std::env::var_os(var)?;
    (!value.is_empty()).then(|| PathBuf::from(value))
}

fn in_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
