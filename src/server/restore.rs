//! `snapshot restore` and `snapshot verify` (etcdutl's offline commands): turn a snapshot
//! file (from `etcdctl snapshot save`) into the data dir of a member of a NEW cluster.
//!
//! Restore imports the image into `<data-dir>/member/snap/db` (the import checks the
//! structure and the trailing SHA-256), replaces the cluster records with the membership
//! the flags describe (so the cluster id is new, derived from the new member ids), and
//! starts a fresh WAL holding only a snapshot marker at the image's applied index (term 1)
//! and a hard state committing it. Every member restored from the same file thus starts
//! with the same store and an empty log above the same index: Raft elects a leader and goes
//! on from there, with the snapshot's data and revision.
//!
//! Offline only: never run against a data dir a server is using (it refuses an existing
//! one). Called by `src/ctl/snapshot.rs`; touches no network.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::alarms::AlarmSet;
use super::members;
use super::snapshot_file::{open_image, RehashReader};
use super::storage::{db_dir, mark_bootstrapped, wal_dir};
use super::{ServerConfig, ServerError};
use crate::mvcc::{import_snapshot, KvHash, SledBackend, SledConfig};
use crate::raft::{HardState, Index, SnapshotMetadata, Term};
use crate::wal::{FsDisk, Wal, WalOptions};

/// etcdutl's `snapshot restore` flags.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// `--name`: this member's name (must be in `initial_cluster`).
    pub name: String,
    /// `--data-dir`: must not exist yet.
    pub data_dir: PathBuf,
    /// `--initial-cluster`: (name, peer URLs) of every member of the new cluster.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// `--initial-cluster-token`: with the peer URLs, gives the member ids.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`: must equal this member's URLs in `initial_cluster`.
    pub initial_advertise_peer_urls: Vec<String>,
    /// `--skip-hash-check`: accept a file whose trailing SHA-256 does not match.
    pub skip_hash_check: bool,
    /// Print `restoring: N% (x of y MB)` lines to stderr as the image is read.
    pub show_progress: bool,
}

/// Reports a long copy's progress on stderr, one line per tenth of the total:
/// `restoring: 40% (133.6 of 334.0 MB)`. Used by `snapshot restore` (over the file it
/// reads) and `raftkvctl snapshot save` (over the stream it receives).
#[derive(Debug)]
pub struct ProgressMeter {
    label: &'static str,
    done_bytes: u64,
    total_bytes: u64,
    next_report: u64,
}

impl ProgressMeter {
    /// A meter printing `<label>: N% (...)` lines; `total_bytes` 0 prints nothing.
    pub fn new(label: &'static str, total_bytes: u64) -> ProgressMeter {
        ProgressMeter {
            label,
            done_bytes: 0,
            total_bytes,
            next_report: total_bytes / 10,
        }
    }

    /// Counts `n` more bytes done, printing a line when another tenth is complete.
    pub fn advance(&mut self, n: u64) {
        self.done_bytes += n;
        if self.total_bytes == 0 || self.done_bytes < self.next_report {
            return;
        }
        let percent = (self.done_bytes * 100 / self.total_bytes).min(100);
        eprintln!(
            "{}: {percent}% ({:.1} of {:.1} MB)",
            self.label,
            self.done_bytes as f64 / 1e6,
            self.total_bytes as f64 / 1e6
        );
        while self.next_report <= self.done_bytes {
            self.next_report += (self.total_bytes / 10).max(1);
        }
    }
}

/// A reader that feeds a [`ProgressMeter`].
struct Progress<R> {
    inner: R,
    meter: ProgressMeter,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.advance(n as u64);
        Ok(n)
    }
}

/// What a restore produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// The new cluster's id.
    pub cluster_id: u64,
    /// This member's id in it.
    pub member_id: u64,
    /// The store revision restored.
    pub revision: i64,
    /// The applied index the store (and the WAL's snapshot marker) stands at.
    pub applied_index: u64,
    /// HashKV of the restored store at `revision` (compare with the old cluster's).
    pub hash: KvHash,
}

fn sorted(urls: &[String]) -> Vec<String> {
    let mut v = urls.to_vec();
    v.sort();
    v
}

fn check_options(opts: &RestoreOptions) -> Result<(), ServerError> {
    if opts.data_dir.exists() {
        return Err(ServerError::Config(format!(
            "data-dir {:?} exists",
            opts.data_dir.display().to_string()
        )));
    }
    let Some((_, urls)) = opts.initial_cluster.iter().find(|(n, _)| *n == opts.name) else {
        return Err(ServerError::Config(format!(
            "member {:?} is not in --initial-cluster",
            opts.name
        )));
    };
    if sorted(urls) != sorted(&opts.initial_advertise_peer_urls) {
        return Err(ServerError::Config(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            opts.name,
            urls.join(","),
            opts.initial_advertise_peer_urls.join(",")
        )));
    }
    Ok(())
}

/// Restores `snapshot` into `opts.data_dir` (see the module doc). On any error the
/// partial data dir is removed again.
pub fn restore_snapshot(
    snapshot: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport, ServerError> {
    check_options(opts)?;
    let image = open_image(snapshot, opts.skip_hash_check)?;
    let image: Box<dyn Read> = if opts.show_progress {
        let total_bytes = std::fs::metadata(snapshot).map_or(0, |m| m.len());
        Box::new(Progress {
            inner: image,
            meter: ProgressMeter::new("restoring", total_bytes),
        })
    } else {
        Box::new(image)
    };
    let input: Box<dyn Read> = if opts.skip_hash_check {
        Box::new(BufReader::with_capacity(1 << 20, RehashReader::new(image)))
    } else {
        Box::new(image)
    };
    let result = restore_into(snapshot, input, opts);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&opts.data_dir);
    }
    result
}

fn restore_into(
    snapshot: &Path,
    input: Box<dyn Read>,
    opts: &RestoreOptions,
) -> Result<RestoreReport, ServerError> {
    let backend = SledBackend::open(&db_dir(&opts.data_dir), SledConfig::default())
        .map_err(|e| ServerError::Storage(format!("creating the store: {e}")))?;
    let mut store = import_snapshot(input, backend)
        .map_err(|e| ServerError::InvalidSnapshot(format!("{}: {e}", snapshot.display())))?;
    let mut cfg = ServerConfig::new(&opts.name, opts.data_dir.clone());
    cfg.initial_cluster = opts.initial_cluster.clone();
    cfg.initial_cluster_token = opts.initial_cluster_token.clone();
    cfg.advertise_peer_urls = opts.initial_advertise_peer_urls.clone();
    let meta = members::initial(&cfg)?;
    let mut alarms = AlarmSet::load(&store)?;
    if let Some(old) = members::load(&store)? {
        let applied = store.applied_index();
        let mut batch = store.begin_apply()?;
        for id in old.members.keys() {
            members::delete_member(&mut batch, *id);
        }
        for id in &old.removed {
            members::forget_removed(&mut batch, *id);
        }
        // Alarms name the old member ids; the new cluster starts without any.
        alarms.clear(&mut batch);
        batch.commit(applied)?;
    }
    members::bootstrap(&mut store, &meta)?;
    mark_bootstrapped(&opts.data_dir)?;
    let member_id = members::local_id(&cfg, &meta)?;
    let applied_index = store.applied_index();
    let revision = store.current_revision();
    let hash = store.hash_kv(revision)?;
    drop(store);
    let (mut wal, _) = Wal::open(FsDisk, wal_dir(&opts.data_dir), WalOptions::default())?;
    wal.save_snapshot(&SnapshotMetadata {
        index: Index(applied_index),
        term: Term(1),
        conf_state: meta.conf_state.clone(),
    })?;
    wal.set_hard_state(&HardState {
        term: Term(1),
        vote: None,
        commit: Index(applied_index),
    })?;
    wal.sync()?;
    Ok(RestoreReport {
        cluster_id: meta.cluster_id,
        member_id,
        revision,
        applied_index,
        hash,
    })
}

/// What `snapshot verify` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The restore's report (ids are those of a throwaway one-member cluster).
    pub restored: RestoreReport,
    /// HashKV after reopening the restored data dir from scratch (must equal
    /// `restored.hash`).
    pub reopened_hash: KvHash,
}

/// The rehearsal: restores `snapshot` into a temporary dir as a one-member cluster, opens
/// that data dir the way a starting server does (store, WAL, Raft state), and checks that
/// the HashKV survives the reopen. The temporary dir is removed afterwards.
pub fn verify_snapshot(snapshot: &Path) -> Result<VerifyReport, ServerError> {
    let tmp = tempdir()?;
    let data_dir = tmp.join("verify.raftkv");
    let url = "http://localhost:2380".to_string();
    let opts = RestoreOptions {
        name: "verify".into(),
        data_dir: data_dir.clone(),
        initial_cluster: vec![("verify".into(), vec![url.clone()])],
        initial_cluster_token: "raftkv-verify".into(),
        initial_advertise_peer_urls: vec![url],
        skip_hash_check: false,
        show_progress: false,
    };
    let result = restore_snapshot(snapshot, &opts).and_then(|restored| {
        let mut cfg = ServerConfig::new("verify", data_dir.clone());
        cfg.initial_cluster_token = opts.initial_cluster_token.clone();
        let opened = super::storage::open(&cfg, None)?;
        let reopened_hash = opened.store.hash_kv(restored.revision)?;
        if reopened_hash != restored.hash {
            return Err(ServerError::InvalidSnapshot(format!(
                "{}: HashKV {:08x} after reopening, {:08x} after restoring",
                snapshot.display(),
                reopened_hash.hash,
                restored.hash.hash
            )));
        }
        Ok(VerifyReport {
            restored,
            reopened_hash,
        })
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn tempdir() -> Result<PathBuf, ServerError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("raftkv-verify-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| ServerError::Storage(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}
