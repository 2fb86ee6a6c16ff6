//! An in-memory [`Disk`] that loses what was not synced when it "crashes": the WAL's test
//! double.
//!
//! It keeps two views of the directory tree: what a running process sees (`live`), and
//! what would be found after a power cut (`durable`: the names made durable by `sync_dir`,
//! each pointing at an inode whose durable bytes were fixed by the last `sync_data`).
//! [`MemDisk::crash`] replaces the live view by the durable one, dropping every unsynced
//! byte, creation and removal; [`MemDisk::crash_torn`] also keeps a random part of the
//! unsynced appended bytes, some of them zeroed, as a real disk may. Handles opened before a
//! crash fail afterwards, like those of a dead process.
//!
//! Worked example: `create(a)`, `sync_dir`, `append(a, "xy")`, `sync_data`, `append(a, "z")`,
//! `create(b)`, `crash()` leaves `a` = "xy" and no `b`.
//!
//! Only tests and benches use it; the WAL itself never names it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;

use super::disk::{Disk, DiskFile};

/// An in-memory disk; clones are handles on the same shared state.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    state: Arc<Mutex<MemState>>,
}

/// A file of a [`MemDisk`] opened for appending.
#[derive(Debug)]
pub struct MemFile {
    disk: MemDisk,
    inode: u64,
    generation: u64,
}

#[derive(Debug, Default)]
struct MemState {
    /// Path to inode, as the running process sees it.
    live: BTreeMap<PathBuf, u64>,
    /// Path to inode, as it would be after a crash.
    durable: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Bumped by every crash; handles from an older generation are dead.
    generation: u64,
    data_syncs: u64,
    dir_syncs: u64,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// The bytes that survive a crash.
    synced: Vec<u8>,
    /// Set when a truncate cut into `synced`: `data` no longer extends `synced`.
    rewritten: bool,
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// Simulates a power cut: every unsynced byte, file creation and removal is lost.
    pub fn crash(&self) {
        self.crash_with(|_, _| 0);
    }

    /// Simulates a power cut in which an unsynced appended tail made it to disk in part:
    /// a random prefix of it survives, and sometimes the last few surviving bytes read as
    /// zeros (the file grew but the data block never landed).
    pub fn crash_torn(&self, rng: &mut impl Rng) {
        self.crash_with(|unsynced, data| {
            let keep = rng.gen_range(0..=unsynced.len());
            data.extend_from_slice(&unsynced[..keep]);
            if keep > 0 && rng.gen_bool(0.25) {
                let zeros = rng.gen_range(1..=keep.min(16));
                let len = data.len();
                data[len - zeros..].fill(0);
            }
            keep
        });
    }

    fn crash_with(&self, mut keep_unsynced: impl FnMut(&[u8], &mut Vec<u8>) -> usize) {
        let mut state = self.lock();
        state.generation += 1;
        state.live = state.durable.clone();
        let referenced: Vec<u64> = state.durable.values().copied().collect();
        state.inodes.retain(|id, _| referenced.contains(id));
        for inode in state.inodes.values_mut() {
            let mut data = inode.synced.clone();
            if !inode.rewritten && inode.data.len() > inode.synced.len() {
                keep_unsynced(&inode.data[inode.synced.len()..], &mut data);
            }
            inode.data = data;
            inode.synced = inode.data.clone();
            inode.rewritten = false;
        }
    }

    /// How many `sync_data` calls the disk has seen (fdatasyncs).
    pub fn sync_count(&self) -> u64 {
        self.lock().data_syncs
    }

    /// How many `sync_dir` calls the disk has seen.
    pub fn dir_sync_count(&self) -> u64 {
        self.lock().dir_syncs
    }

    /// The live content of the file at `path`, if there is one.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        state.live.get(path).map(|id| state.inodes[id].data.clone())
    }

    /// Replaces the content of an existing file, durably (tests use it to corrupt or cut
    /// segments as a bad disk would have).
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut state = self.lock();
        let id = *state
            .live
            .get(path)
            .unwrap_or_else(|| panic!("no file {}", path.display()));
        let inode = state.inodes.get_mut(&id).unwrap();
        inode.synced = bytes.clone();
        inode.data = bytes;
        inode.rewritten = false;
    }

    /// Paths of the live files directly in `dir`, sorted.
    pub fn paths_in(&self, dir: &Path) -> Vec<PathBuf> {
        let state = self.lock();
        state
            .live
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state
            .lock()
            .expect("MemDisk mutex poisoned by a panicking test")
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no file {}", path.display()),
    )
}

impl Disk for MemDisk {
    type File = MemFile;

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implied by the paths of the files in them.
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let names = self.paths_in(dir).into_iter();
        Ok(names
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.file_bytes(path).ok_or_else(|| not_found(path))
    }

    fn create(&self, path: &Path) -> io::Result<MemFile> {
        let mut state = self.lock();
        if state.live.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                path.display().to_string(),
            ));
        }
        let id = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(id, Inode::default());
        state.live.insert(path.to_path_buf(), id);
        Ok(MemFile {
            disk: self.clone(),
            inode: id,
            generation: state.generation,
        })
    }

    fn open_append(&self, path: &Path) -> io::Result<MemFile> {
        let state = self.lock();
        let id = *state.live.get(path).ok_or_else(|| not_found(path))?;
        Ok(MemFile {
            disk: self.clone(),
            inode: id,
            generation: state.generation,
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.live.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.dir_syncs += 1;
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        state.durable.retain(|path, _| !in_dir(path));
        let live_in_dir: Vec<(PathBuf, u64)> = state
            .live
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        state.durable.extend(live_in_dir);
        Ok(())
    }
}

impl MemFile {
    fn with_inode<T>(&mut self, f: impl FnOnce(&mut MemState, u64) -> T) -> io::Result<T> {
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return Err(io::Error::other(
                "MemDisk crashed since this file was opened",
            ));
        }
        Ok(f(&mut state, self.inode))
    }
}

impl DiskFile for MemFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.with_inode(|state, id| {
            state
                .inodes
                .get_mut(&id)
                .unwrap()
                .data
                .extend_from_slice(bytes)
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with_inode(|state, id| {
            state.data_syncs += 1;
            let inode = state.inodes.get_mut(&id).unwrap();
            if inode.rewritten {
                inode.synced = inode.data.clone();
                inode.rewritten = false;
            } else {
                let synced_len = inode.synced.len();
                inode.synced.extend_from_slice(&inode.data[synced_len..]);
            }
        })
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with_inode(|state, id| {
            let inode = state.inodes.get_mut(&id).unwrap();
            assert!(
                len as usize <= inode.data.len(),
                "MemDisk truncate beyond the end"
            );
            inode.data.truncate(len as usize);
            if inode.data.len() < inode.synced.len() {
                inode.rewritten = true;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_exactly_what_was_synced() {
        let disk = MemDisk::new();
        let dir = Path::new("/w");
        let (a, b) = (dir.join("a"), dir.join("b"));
        let mut file_a = disk.create(&a).unwrap();
        disk.sync_dir(dir).unwrap();
        file_a.append(b"xy").unwrap();
        file_a.sync_data().unwrap();
        file_a.append(b"z").unwrap();
        let mut file_b = disk.create(&b).unwrap();
        file_b.append(b"never named durably").unwrap();
        file_b.sync_data().unwrap();
        disk.crash();
        assert_eq!(disk.file_bytes(&a).unwrap(), b"xy");
        assert_eq!(disk.file_bytes(&b), None);
        assert!(
            file_a.append(b"late").is_err(),
            "a handle from before the crash must die"
        );
    }

    #[test]
    fn unsynced_removal_and_truncation_come_back() {
        let disk = MemDisk::new();
        let dir = Path::new("/w");
        let a = dir.join("a");
        let mut file = disk.create(&a).unwrap();
        file.append(b"abcdef").unwrap();
        file.sync_data().unwrap();
        disk.sync_dir(dir).unwrap();
        file.truncate(2).unwrap();
        disk.remove(&a).unwrap();
        disk.crash();
        assert_eq!(disk.file_bytes(&a).unwrap(), b"abcdef");
    }
}
