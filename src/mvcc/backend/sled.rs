//! The production [`Backend`] on sled, with a crash-safe directory layout that lets
//! defragmentation swap in a fresh database with one atomic rename.
//!
//! Layout of the backend directory: `CURRENT` names the live database directory
//! (`db.<n>`); a [`Backend::fresh_sibling`] is a new `db.<m>` (m > every n), which
//! [`Backend::replace_with`] promotes by replacing `CURRENT` with an atomic rename.
//! Opening removes every `db.*` that `CURRENT` does not name (the leftovers of an
//! interrupted or finished defragmentation or snapshot installation). Both buckets share one sled
//! tree, keys prefixed by the bucket tag, because sled's `apply_batch` is atomic within
//! one tree: that is what makes an apply batch all-or-nothing.
//!
//! sled's `flush` is not a real fsync, so [`Backend::sync_durable`] flushes and then
//! fsyncs every file and directory itself. Callers: the store, the snapshot importer.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Backend, BatchOp, Bucket, Entry, WriteBatch};
use crate::mvcc::error::{MvccError, Result};

/// Settings of a [`SledBackend`].
#[derive(Clone, Debug)]
pub struct SledConfig {
    /// sled's page cache size.
    pub cache_capacity_bytes: u64,
}

impl Default for SledConfig {
    fn default() -> Self {
        SledConfig {
            cache_capacity_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A backend in a sled database under a directory it owns.
#[derive(Debug)]
pub struct SledBackend {
    /// The backend directory (holding `CURRENT` and `db.<n>`).
    dir: PathBuf,
    /// The generation number `n` of the live `db.<n>`.
    generation: u64,
    config: SledConfig,
    db: sled::Db,
}

const CURRENT: &str = "CURRENT";

fn db_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("db.{generation}"))
}

/// fsync `path` (a file or a directory).
fn fsync_path(path: &Path) -> Result<()> {
    fs::File::open(path)?.sync_all()?;
    Ok(())
}

/// fsync every file and directory under `dir`, then `dir` itself.
fn fsync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            fsync_tree(&path)?;
        } else {
            fsync_path(&path)?;
        }
    }
    fsync_path(dir)
}

fn read_current(dir: &Path) -> Result<Option<u64>> {
    match fs::read_to_string(dir.join(CURRENT)) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| {
            MvccError::Corrupt(format!("bad {CURRENT} file in {}: {s:?}", dir.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Point `CURRENT` at `generation` atomically and durably.
fn write_current(dir: &Path, generation: u64) -> Result<()> {
    let tmp = dir.join("CURRENT.tmp");
    fs::write(&tmp, format!("{generation}\n"))?;
    fsync_path(&tmp)?;
    fs::rename(&tmp, dir.join(CURRENT))?;
    fsync_path(dir)
}

/// The highest `n` of the `db.<n>` directories in `dir` (0 if none).
fn highest_generation(dir: &Path) -> Result<u64> {
    let mut highest = 0;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("db.").and_then(|n| n.parse::<u64>().ok()) {
            highest = highest.max(n);
        }
    }
    Ok(highest)
}

/// Remove `db.*` directories other than the live one.
fn remove_stale(dir: &Path, generation: u64) -> Result<()> {
    let live = format!("db.{generation}");
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("db.") && name != live {
            tracing::info!(dir = %entry.path().display(), "removing stale backend directory");
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// How long [`open_db`] waits for a file lock that a just-dropped handle still holds. Generous
/// because on a loaded machine sled's flusher thread may not run for seconds (a test that
/// reopened within 5 s failed once under a load average of 14).
const LOCK_WAIT_MAX: Duration = Duration::from_secs(30);

/// Open sled. sled 0.34's background threads (its timer flusher above all) keep the
/// database's file lock for a moment after the last handle is dropped
/// (spacejam/sled#1234), so reopening the same directory in this process (an in-process
/// restart, a test) failed with "could not acquire lock" (85 times in 100 in
/// `tests/mvcc_reopen.rs`); that window is waited out here, up to [`LOCK_WAIT_MAX`].
/// (Turning the flusher off shortens the window but made puts at 1M keys ~15x slower.)
fn open_db(path: &Path, config: &SledConfig) -> Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT_MAX;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_bytes)
            .open();
        match opened {
            // sled reports the lock failure as an `Other` IO error; only its text tells.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                // Nothing to wait on but time: the holder is a sled thread of this process.
                std::thread::sleep(Duration::from_millis(2));
            }
            other => return Ok(other?),
        }
    }
}

impl SledBackend {
    /// Open the backend in `dir`, creating it (empty) if needed.
    pub fn open(dir: &Path, config: SledConfig) -> Result<SledBackend> {
        fs::create_dir_all(dir)?;
        let generation = match read_current(dir)? {
            Some(generation) => generation,
            None => {
                write_current(dir, 0)?;
                0
            }
        };
        // Only once the live generation's lock is ours: a second opener of a directory a
        // running server uses (a tool run by mistake) must fail on the lock, not first
        // delete that server's in-progress sibling (a defrag copy, a snapshot install).
        let db = open_db(&db_dir(dir, generation), &config)?;
        remove_stale(dir, generation)?;
        Ok(SledBackend {
            dir: dir.to_path_buf(),
            generation,
            config,
            db,
        })
    }

    /// The backend directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Backend for SledBackend {
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(bucket.prefixed(key))?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        assert!(limit >= 1, "scan limit must be >= 1");
        let lo = bucket.prefixed(start);
        let hi = match end {
            Some(end) => bucket.prefixed(end),
            None => vec![bucket.tag() + 1],
        };
        if lo >= hi {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for item in self.db.range(lo..hi).take(limit) {
            let (k, v) = item?;
            out.push((k[1..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut b = sled::Batch::default();
        for op in batch.ops {
            match op {
                BatchOp::Put { bucket, key, value } => b.insert(bucket.prefixed(&key), value),
                BatchOp::Delete { bucket, key } => b.remove(bucket.prefixed(&key)),
            }
        }
        self.db.apply_batch(b)?;
        Ok(())
    }

    fn sync_durable(&self) -> Result<()> {
        self.db.flush()?;
        fsync_tree(&db_dir(&self.dir, self.generation))?;
        fsync_path(&self.dir)
    }

    fn size_bytes(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    fn fresh_sibling(&self) -> Result<SledBackend> {
        let generation = highest_generation(&self.dir)?.max(self.generation) + 1;
        let db = open_db(&db_dir(&self.dir, generation), &self.config)?;
        let (dir, config) = (self.dir.clone(), self.config.clone());
        Ok(SledBackend {
            dir,
            generation,
            config,
            db,
        })
    }

    fn replace_with(&self, fresh: SledBackend) -> Result<SledBackend> {
        assert_eq!(
            fresh.dir, self.dir,
            "replacement from another backend directory"
        );
        write_current(&self.dir, fresh.generation)?;
        Ok(fresh)
    }

    fn destroy(self) -> Result<()> {
        let path = db_dir(&self.dir, self.generation);
        drop(self.db);
        fs::remove_dir_all(path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_is_invisible_until_promoted() {
        let tmp = tempfile::tempdir().unwrap();
        let b = SledBackend::open(tmp.path(), SledConfig::default()).unwrap();
        let put = |b: &SledBackend, v: &[u8]| {
            let mut w = WriteBatch::default();
            w.put(Bucket::Meta, b"m".to_vec(), v.to_vec());
            b.write(w).unwrap();
            b.sync_durable().unwrap();
        };
        put(&b, b"old");
        let fresh = b.fresh_sibling().unwrap();
        put(&fresh, b"new");
        drop((b, fresh)); // crash before promotion: the old data stays, the sibling goes
        let b = SledBackend::open(tmp.path(), SledConfig::default()).unwrap();
        assert_eq!(b.get(Bucket::Meta, b"m").unwrap(), Some(b"old".to_vec()));
        assert!(!tmp.path().join("db.1").exists());
        let fresh = b.fresh_sibling().unwrap();
        put(&fresh, b"new");
        let active = b.replace_with(fresh).unwrap();
        b.destroy().unwrap();
        assert_eq!(
            active.get(Bucket::Meta, b"m").unwrap(),
            Some(b"new".to_vec())
        );
        drop(active);
        let again = SledBackend::open(tmp.path(), SledConfig::default()).unwrap();
        assert_eq!(again.generation, 1);
        assert_eq!(
            again.get(Bucket::Meta, b"m").unwrap(),
            Some(b"new".to_vec())
        );
        assert!(!tmp.path().join("db.0").exists());
    }
}
