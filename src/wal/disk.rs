//! The small filesystem interface the WAL writes through, and its real implementation.
//!
//! Everything the WAL does to storage goes through [`Disk`] and [`DiskFile`], so tests can
//! swap in [`MemDisk`](crate::wal::MemDisk), which forgets every byte not yet synced when it
//! "crashes". The interface is the few operations a segmented append-only log needs: no
//! seeking, no overwrite in place, no rename. It must not buffer: `append` hands bytes to the
//! operating system, `sync_data` makes them durable. Called only by `writer.rs`/`open.rs`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A directory tree of files, as the WAL needs it.
///
/// Durability contract (what [`MemDisk`](crate::wal::MemDisk) models): bytes appended to a
/// file survive a crash only after [`DiskFile::sync_data`] on it; a file's creation or
/// removal survives only after [`Disk::sync_dir`] on its directory. Anything else may be
/// lost, or kept in part.
pub trait Disk {
    /// An open file, for appending.
    type File: DiskFile;

    /// Creates `dir` and its parents if missing, durably.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Names (not paths) of the files directly in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Creates an empty file at `path`; fails with `AlreadyExists` if there is one.
    fn create(&self, path: &Path) -> io::Result<Self::File>;

    /// Opens the existing file at `path`; writes go to its end.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;

    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Makes the creations and removals of files in `dir` durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file opened for appending.
pub trait DiskFile {
    /// Appends all of `bytes` at the end of the file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Makes everything appended so far, and the file's length, durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;

    /// Cuts the file to `len` bytes (`len` is at most the current length). Not durable
    /// until the next `sync_data`.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsDisk;

/// A real file opened for appending.
#[derive(Debug)]
pub struct FsFile {
    file: File,
    path: PathBuf,
}

impl Disk for FsDisk {
    type File = FsFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir)?;
        // Make the new directory's own entry durable, or a crash could lose the whole WAL.
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.sync_dir(parent),
            _ => Ok(()),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for dir_entry in fs::read_dir(dir)? {
            let dir_entry = dir_entry?;
            if dir_entry.file_type()?.is_file() {
                names.push(dir_entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<FsFile> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        Ok(FsFile {
            file,
            path: path.to_path_buf(),
        })
    }

    fn open_append(&self, path: &Path) -> io::Result<FsFile> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(FsFile {
            file,
            path: path.to_path_buf(),
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // On Linux a directory opened read-only can be fsynced; that persists its entries.
        File::open(dir)?.sync_all()
    }
}

impl DiskFile for FsFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let current = self.file.metadata()?.len();
        assert!(
            len <= current,
            "truncating {} from {current} up to {len}",
            self.path.display()
        );
        self.file.set_len(len)
    }
}
