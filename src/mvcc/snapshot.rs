//! Snapshots: a streaming export of the whole backend in a self-describing format with a
//! trailing SHA-256, and the import that verifies it and rebuilds a store. The same image
//! serves Raft snapshots, Maintenance.Snapshot and `snapshot restore`.
//!
//! # Format (version 1)
//!
//! ```text
//! header:  magic "RAFTKVSS" (8 bytes), version u32 BE (= 1)
//! records: tag u8 ('k' key bucket | 'm' meta bucket), key_len u32 BE, key,
//!          value_len u32 BE, value                 -- key bucket first, each ascending
//! end:     tag 0x00, then SHA-256 (32 bytes) of every byte before it, end tag included
//! ```
//!
//! Consistency: the export captures the meta bucket and the current revision when it
//! starts and streams key-bucket entries up to that revision only. Later writes add
//! entries above it (skipped); physical compaction, the only thing that deletes entries,
//! pauses while an export is alive. So the image is the state at the start, even though
//! it is read lazily while the store keeps serving.

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::backend::{key_after, scan_pages, Backend, Bucket, Entry, WriteBatch};
use super::error::{MvccError, Result};
use super::revision::Revision;
use super::store::{Store, META_IMPORT_INCOMPLETE, SCAN_PAGE_ENTRIES};

/// The first 8 bytes of every snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"RAFTKVSS";
const SNAPSHOT_VERSION: u32 = 1;
const END_TAG: u8 = 0;
/// Records larger than this are refused on import (corrupt length fields).
const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Key-bucket entries per exported chunk (values are at most a few MiB each).
const CHUNK_ENTRIES: usize = 256;
/// Records written per backend batch during import.
const IMPORT_BATCH_RECORDS: usize = 1000;

enum Stage {
    Keys { cursor: Vec<u8> },
    Meta,
    Done,
}

/// Counts one reader of the backend (an export or a [`super::hash::KvHasher`]) while it
/// lives; physical compaction waits until none is left.
pub(crate) struct ExportGuard(Arc<AtomicUsize>);

impl ExportGuard {
    /// Registers a reader on `counter` (the store's `exports_active`).
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> ExportGuard {
        counter.fetch_add(1, Ordering::SeqCst);
        ExportGuard(counter.clone())
    }
}

impl Drop for ExportGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A snapshot being streamed: use it as a [`Read`], or pull chunks with
/// [`SnapshotReader::next_chunk`]. Holds the backend (not the store) so the store keeps
/// serving; physical compaction pauses until it is dropped.
pub struct SnapshotReader<B: Backend> {
    backend: Arc<B>,
    meta: std::vec::IntoIter<Entry>,
    key_end: [u8; 17],
    stage: Stage,
    hasher: Sha256,
    buf: Vec<u8>,
    pos: usize,
    applied_index: u64,
    revision: i64,
    total_bytes: u64,
    _guard: ExportGuard,
}

/// Bytes of one record of a `key_len + value_len` byte entry: tag and two length fields.
const RECORD_OVERHEAD_BYTES: u64 = 9;

fn push_record(out: &mut Vec<u8>, bucket: Bucket, key: &[u8], value: &[u8]) {
    out.push(bucket.tag());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

impl<B: Backend> Store<B> {
    /// Start exporting the whole backend as of now (see the module doc).
    pub fn snapshot(&self) -> Result<SnapshotReader<B>> {
        self.check_usable()?;
        let guard = ExportGuard::new(&self.exports_active);
        let mut meta = Vec::new();
        scan_pages(
            self.backend.as_ref(),
            Bucket::Meta,
            b"",
            None,
            SCAN_PAGE_ENTRIES,
            |page| {
                meta.extend(page);
                Ok(ControlFlow::Continue(()))
            },
        )?;
        let mut header = SNAPSHOT_MAGIC.to_vec();
        header.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        let meta_bytes: u64 = meta
            .iter()
            .map(|(k, v)| RECORD_OVERHEAD_BYTES + (k.len() + v.len()) as u64)
            .sum();
        let key_bytes = self.key_bucket_bytes + RECORD_OVERHEAD_BYTES * self.key_bucket_entries;
        let total_bytes = header.len() as u64 + key_bytes + meta_bytes + 1 + 32;
        let mut hasher = Sha256::new();
        hasher.update(&header);
        Ok(SnapshotReader {
            backend: self.backend.clone(),
            meta: meta.into_iter(),
            key_end: Revision::new(self.current_revision + 1, 0).to_bytes(),
            stage: Stage::Keys { cursor: Vec::new() },
            hasher,
            buf: header,
            pos: 0,
            applied_index: self.applied_index,
            revision: self.current_revision,
            total_bytes,
            _guard: guard,
        })
    }
}

impl<B: Backend> SnapshotReader<B> {
    /// The applied Raft index the image holds.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The store revision the image holds.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Length of the whole stream in bytes, known up front (for the Snapshot RPC's
    /// `remaining_bytes`): computed from the store's count of key-bucket entries and bytes.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The next piece of the stream (at most 256 records), None at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.pos < self.buf.len() {
            let chunk = self.buf.split_off(self.pos);
            self.buf.clear();
            self.pos = 0;
            return Ok(Some(chunk));
        }
        let mut chunk = Vec::new();
        match &mut self.stage {
            Stage::Keys { cursor } => {
                let end = Some(&self.key_end[..]);
                let page = self.backend.scan(Bucket::Key, cursor, end, CHUNK_ENTRIES)?;
                match page.last() {
                    Some((last, _)) => *cursor = key_after(last),
                    None => self.stage = Stage::Meta,
                }
                for (k, v) in &page {
                    push_record(&mut chunk, Bucket::Key, k, v);
                }
            }
            Stage::Meta => {
                for (k, v) in self.meta.by_ref() {
                    push_record(&mut chunk, Bucket::Meta, &k, &v);
                }
                chunk.push(END_TAG);
                self.hasher.update(&chunk);
                chunk.extend_from_slice(&self.hasher.finalize_reset());
                self.stage = Stage::Done;
                return Ok(Some(chunk));
            }
            Stage::Done => return Ok(None),
        }
        self.hasher.update(&chunk);
        Ok(Some(chunk))
    }
}

impl<B: Backend> Read for SnapshotReader<B> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.next_chunk().map_err(io::Error::other)? {
                Some(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads from the input while hashing everything read.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn exact(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; n];
        self.inner
            .read_exact(&mut out)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => MvccError::InvalidSnapshot("truncated".into()),
                _ => MvccError::InvalidSnapshot(format!("read failed: {e}")),
            })?;
        self.hasher.update(&out);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.exact(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn field(&mut self) -> Result<Vec<u8>> {
        let len = self.u32()? as usize;
        if len > RECORD_BYTES_MAX {
            return Err(MvccError::InvalidSnapshot(format!("record of {len} bytes")));
        }
        self.exact(len)
    }
}

/// Build a store from a snapshot stream into `backend`, which must be empty (a fresh sled
/// directory or a new [`super::MemBackend`]). Verifies the header and the trailing SHA-256
/// and refuses truncated, corrupt or over-long input with `InvalidSnapshot`; on any error
/// the backend holds a partial import that [`Store::open`] refuses: discard it.
pub fn import_snapshot<R: Read, B: Backend>(input: R, backend: B) -> Result<Store<B>> {
    import_into(input, &backend)?;
    Store::open(backend)
}

impl<B: Backend> Store<B> {
    /// Replace this store's whole state with a snapshot (a follower installing the
    /// leader's Raft snapshot): import into a fresh sibling backend, verify it, promote it
    /// atomically, reopen. On error (bad snapshot, IO) the store is unchanged, also after
    /// a crash at any point.
    pub fn install_snapshot<R: Read>(&mut self, input: R) -> Result<()> {
        self.check_usable()?;
        let fresh = self.backend.fresh_sibling()?;
        if let Err(e) = import_into(input, &fresh) {
            fresh.destroy()?;
            return Err(e);
        }
        // A failed switch may have renamed CURRENT already (only its directory fsync
        // failed): which backend the next open loads is unknown, so this store takes no
        // more writes (poisoned, as after a failed commit) and a restart sorts it out.
        let active = self
            .backend
            .replace_with(fresh)
            .inspect_err(|_| self.poisoned = true)?;
        let installed = Store::open(active).inspect_err(|_| {
            // The disk now holds the new state; this store no longer describes it.
            self.poisoned = true;
        })?;
        let mut old = std::mem::replace(self, installed);
        self.retired = std::mem::take(&mut old.retired);
        self.retire(old.backend)?;
        tracing::info!(
            applied_index = self.applied_index,
            revision = self.current_revision,
            "installed snapshot"
        );
        Ok(())
    }
}

/// Write a verified snapshot stream into the empty `backend` and make it durable; see
/// [`import_snapshot`] for the errors.
fn import_into<R: Read, B: Backend>(input: R, backend: &B) -> Result<()> {
    let not_empty = |b: Bucket| backend.scan(b, b"", None, 1).map(|p| !p.is_empty());
    if not_empty(Bucket::Key)? || not_empty(Bucket::Meta)? {
        return Err(MvccError::InvalidSnapshot(
            "import target backend is not empty".into(),
        ));
    }
    let mut marker = WriteBatch::default();
    marker.put(Bucket::Meta, META_IMPORT_INCOMPLETE.to_vec(), vec![1]);
    backend.write(marker)?;
    let mut r = HashingReader {
        inner: input,
        hasher: Sha256::new(),
    };
    if r.exact(8)? != SNAPSHOT_MAGIC || r.u32()? != SNAPSHOT_VERSION {
        return Err(MvccError::InvalidSnapshot("bad magic or version".into()));
    }
    let mut batch = WriteBatch::default();
    loop {
        let tag = r.exact(1)?[0];
        if tag == END_TAG {
            break;
        }
        let bucket = Bucket::from_tag(tag)
            .ok_or_else(|| MvccError::InvalidSnapshot(format!("unknown record tag {tag}")))?;
        let (key, value) = (r.field()?, r.field()?);
        if bucket == Bucket::Meta && key == META_IMPORT_INCOMPLETE {
            return Err(MvccError::InvalidSnapshot(
                "image of an incomplete import".into(),
            ));
        }
        batch.put(bucket, key, value);
        if batch.ops.len() == IMPORT_BATCH_RECORDS {
            backend.write(std::mem::take(&mut batch))?;
        }
    }
    let computed = r.hasher.finalize_reset();
    let stored = r.exact(32)?;
    if computed.as_slice() != stored.as_slice() {
        return Err(MvccError::InvalidSnapshot("SHA-256 mismatch".into()));
    }
    if r.inner
        .read(&mut [0u8; 1])
        .map_err(|e| MvccError::InvalidSnapshot(e.to_string()))?
        != 0
    {
        return Err(MvccError::InvalidSnapshot(
            "bytes after the checksum".into(),
        ));
    }
    batch.delete(Bucket::Meta, META_IMPORT_INCOMPLETE.to_vec());
    backend.write(batch)?;
    backend.sync_durable()
}
