//! The production [`Backend`] on sled, with a crash-safe directory layout that lets
//! defragmentation swap in a fresh database with one atomic rename.
//!
//! Layout of the backend directory: `CURRENT` names the live database directory
//! (`db.<n>`); defragmentation copies everything into `db.<n+1>`, fsyncs it, then replaces
//! `CURRENT` by rename. Opening removes every `db.*` that `CURRENT` does not name (the
//! leftovers of an interrupted or finished defragmentation). Both buckets share one sled
//! tree, keys prefixed by the bucket tag, because sled's `apply_batch` is atomic within
//! one tree: that is what makes an apply batch all-or-nothing.
//!
//! sled's `flush` is not a real fsync, so [`Backend::sync_durable`] flushes and then
//! fsyncs every file and directory itself. Callers: the store, the snapshot importer.

use std::fs;
use std::path::{Path, PathBuf};

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
/// Entries copied per batch during defragmentation.
const DEFRAG_BATCH_ENTRIES: usize = 10_000;

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

fn open_db(path: &Path, config: &SledConfig) -> Result<sled::Db> {
    Ok(sled::Config::new()
        .path(path)
        .cache_capacity(config.cache_capacity_bytes)
        .open()?)
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
        remove_stale(dir, generation)?;
        let db = open_db(&db_dir(dir, generation), &config)?;
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

    fn defragment(&self) -> Result<SledBackend> {
        let generation = self.generation + 1;
        let path = db_dir(&self.dir, generation);
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        let db = open_db(&path, &self.config)?;
        let fresh = SledBackend {
            dir: self.dir.clone(),
            generation,
            config: self.config.clone(),
            db,
        };
        let mut batch = sled::Batch::default();
        let mut queued = 0;
        for item in self.db.iter() {
            let (k, v) = item?;
            batch.insert(k, v);
            queued += 1;
            if queued == DEFRAG_BATCH_ENTRIES {
                fresh.db.apply_batch(std::mem::take(&mut batch))?;
                queued = 0;
            }
        }
        fresh.db.apply_batch(batch)?;
        fresh.sync_durable()?;
        write_current(&self.dir, generation)?;
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
    fn defragment_swaps_directories_and_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let b = SledBackend::open(tmp.path(), SledConfig::default()).unwrap();
        let mut w = WriteBatch::default();
        for i in 0..100u32 {
            w.put(Bucket::Key, i.to_be_bytes().to_vec(), vec![7; 100]);
        }
        w.put(Bucket::Meta, b"m".to_vec(), b"x".to_vec());
        b.write(w).unwrap();
        let fresh = b.defragment().unwrap();
        b.destroy().unwrap();
        assert_eq!(fresh.scan(Bucket::Key, b"", None, 1000).unwrap().len(), 100);
        fresh.sync_durable().unwrap();
        drop(fresh);
        let again = SledBackend::open(tmp.path(), SledConfig::default()).unwrap();
        assert_eq!(again.generation, 1);
        assert_eq!(again.get(Bucket::Meta, b"m").unwrap(), Some(b"x".to_vec()));
        assert!(!tmp.path().join("db.0").exists());
    }
}
