//! Snapshot files: what `Maintenance.Snapshot` streams and `etcdctl snapshot save` writes,
//! and reading them back offline.
//!
//! # File layout (the envelope)
//!
//! ```text
//! image   the store image (crate::mvcc::SnapshotReader's format, with its own SHA-256)
//! footer  F - 4 zero bytes, then F as u32 BE, with 4 <= F < 516 chosen so that
//!         image + footer is a multiple of 512 bytes
//! sha     SHA-256 of image + footer (32 bytes)
//! ```
//!
//! etcdctl 3.4 refuses a download whose size is not `512 * n + 32` ("sha256 checksum not
//! found"), because etcd's bolt file is page-aligned and followed by its SHA-256; the
//! footer gives our image the same shape, and says where the image ends.
//!
//! [`open_image`] checks the envelope (outer SHA-256 unless skipped) and hands out the
//! image; [`snapshot_file_status`] is one pass over it that checks the structure and the
//! image's own SHA-256 and sums it up without building a store (flat memory for any size).
//! [`RehashReader`] lets `--skip-hash-check` ignore the image's stored SHA-256 too. Never
//! writes anything; called by the API's snapshot stream, `restore.rs` and `src/ctl/`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ServerError;
use crate::mvcc::{Bucket, SNAPSHOT_MAGIC};

/// Length of the trailing checksum.
const SHA_BYTES: usize = 32;
/// Records longer than this are taken for corruption (the import's own limit).
const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The envelope's alignment (etcdctl checks `size % 512 == 32`).
pub const ENVELOPE_ALIGN_BYTES: u64 = 512;

/// The footer that follows an image of `image_len` bytes (see the module doc).
pub fn envelope_footer(image_len: u64) -> Vec<u8> {
    let mut footer_len = ENVELOPE_ALIGN_BYTES - image_len % ENVELOPE_ALIGN_BYTES;
    if footer_len < 4 {
        footer_len += ENVELOPE_ALIGN_BYTES;
    }
    let mut footer = vec![0u8; footer_len as usize - 4];
    footer.extend_from_slice(&(footer_len as u32).to_be_bytes());
    footer
}

/// Length of a whole snapshot file for an image of `image_len` bytes.
pub fn envelope_len(image_len: u64) -> u64 {
    image_len + envelope_footer(image_len).len() as u64 + SHA_BYTES as u64
}

/// Opens the snapshot file at `path`, checks its envelope (and, unless `skip_hash_check`,
/// its trailing SHA-256) and returns a reader of exactly the image inside it.
pub fn open_image(path: &Path, skip_hash_check: bool) -> Result<impl Read, ServerError> {
    let open_err = |e: io::Error| ServerError::InvalidSnapshot(format!("{}: {e}", path.display()));
    let mut file = File::open(path).map_err(open_err)?;
    let size = file.metadata().map_err(open_err)?.len();
    if size < SHA_BYTES as u64 + 4
        || !(size - SHA_BYTES as u64).is_multiple_of(ENVELOPE_ALIGN_BYTES)
    {
        return Err(bad(
            path,
            format!("size {size} is not 512 * n + 32 bytes (truncated, or not a snapshot file)"),
        ));
    }
    let body_len = size - SHA_BYTES as u64;
    if !skip_hash_check {
        let mut r = Hashing {
            inner: BufReader::with_capacity(1 << 20, (&mut file).take(body_len)),
            sha: Sha256::new(),
        };
        io::copy(&mut r.inner, &mut HashSink(&mut r.sha)).map_err(|e| read_err(path, e))?;
        let computed = r.sha.finalize();
        let mut stored = [0u8; SHA_BYTES];
        file.read_exact(&mut stored)
            .map_err(|e| read_err(path, e))?;
        if computed.as_slice() != stored {
            return Err(bad(path, "SHA-256 mismatch (the file is corrupted)"));
        }
    }
    let mut len_bytes = [0u8; 4];
    file.seek(SeekFrom::Start(body_len - 4)).map_err(open_err)?;
    file.read_exact(&mut len_bytes).map_err(open_err)?;
    let footer_len = u32::from_be_bytes(len_bytes) as u64;
    if !(4..4 + ENVELOPE_ALIGN_BYTES).contains(&footer_len) || footer_len > body_len {
        return Err(bad(
            path,
            "bad envelope footer (not a raftkv snapshot file)",
        ));
    }
    file.seek(SeekFrom::Start(0)).map_err(open_err)?;
    Ok(BufReader::with_capacity(
        1 << 20,
        file.take(body_len - footer_len),
    ))
}

struct HashSink<'a>(&'a mut Sha256);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `snapshot status` reports about a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFileStatus {
    /// CRC32C of every record (tag, key, value), like etcd's status hash over its buckets.
    pub hash: u32,
    /// The store revision the image holds (its `current_rev`).
    pub revision: i64,
    /// Records in the key bucket: one per key revision kept (etcd counts bucket keys too).
    pub total_keys: u64,
    /// The file's size in bytes.
    pub total_size_bytes: u64,
    /// The Raft applied index the image holds.
    pub applied_index: u64,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> ServerError {
    ServerError::InvalidSnapshot(format!("{}: {why}", path.display()))
}

struct Hashing<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> Hashing<R> {
    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; n];
        self.inner.read_exact(&mut out)?;
        self.sha.update(&out);
        Ok(out)
    }

    fn field(&mut self) -> io::Result<Vec<u8>> {
        let len = u32::from_be_bytes(self.exact(4)?.try_into().expect("4 bytes")) as usize;
        if len > RECORD_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a record of {len} bytes (corrupt length)"),
            ));
        }
        self.exact(len)
    }
}

fn read_err(path: &Path, e: io::Error) -> ServerError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => bad(path, "truncated (the image ends early)"),
        io::ErrorKind::InvalidData => bad(path, e),
        _ => ServerError::InvalidSnapshot(format!("reading {}: {e}", path.display())),
    }
}

/// Reads and checks the whole file at `path`: the envelope, then the image's magic,
/// records, end tag and SHA-256. Errors name the file and what is wrong with it.
pub fn snapshot_file_status(path: &Path) -> Result<SnapshotFileStatus, ServerError> {
    let total_size_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut r = Hashing {
        inner: open_image(path, false)?,
        sha: Sha256::new(),
    };
    let e = |e| read_err(path, e);
    if r.exact(8).map_err(e)? != SNAPSHOT_MAGIC {
        return Err(bad(path, "no RAFTKVSS header (not a raftkv snapshot)"));
    }
    r.exact(4).map_err(e)?;
    let mut status = SnapshotFileStatus {
        hash: 0,
        revision: 0,
        total_keys: 0,
        total_size_bytes,
        applied_index: 0,
    };
    loop {
        let tag = r.exact(1).map_err(e)?[0];
        if tag == 0 {
            break;
        }
        let bucket = Bucket::from_tag(tag).ok_or_else(|| bad(path, "unknown record tag"))?;
        let (key, value) = (r.field().map_err(e)?, r.field().map_err(e)?);
        status.hash = crc32c::crc32c_append(status.hash, &[tag]);
        status.hash = crc32c::crc32c_append(status.hash, &key);
        status.hash = crc32c::crc32c_append(status.hash, &value);
        match bucket {
            Bucket::Key => status.total_keys += 1,
            Bucket::Meta => read_meta(&mut status, &key, &value),
        }
    }
    let computed = r.sha.finalize_reset();
    let mut stored = [0u8; SHA_BYTES];
    r.inner.read_exact(&mut stored).map_err(e)?;
    if computed.as_slice() != stored {
        return Err(bad(path, "SHA-256 mismatch (the file is corrupted)"));
    }
    if r.inner.read(&mut [0u8; 1]).map_err(e)? != 0 {
        return Err(bad(path, "bytes after the checksum"));
    }
    Ok(status)
}

fn read_meta(status: &mut SnapshotFileStatus, key: &[u8], value: &[u8]) {
    let Ok(bytes) = <[u8; 8]>::try_from(value) else {
        return;
    };
    match key {
        b"current_rev" => status.revision = i64::from_be_bytes(bytes),
        b"consistent_index" => status.applied_index = i64::from_be_bytes(bytes) as u64,
        _ => {}
    }
}

/// Passes a snapshot stream through, but replaces its last 32 bytes (the stored SHA-256)
/// with the SHA-256 of everything before them: the import then checks structure only.
pub struct RehashReader<R> {
    inner: R,
    sha: Sha256,
    /// Bytes read but not yet passed on: always the last (up to) 32 seen.
    tail: Vec<u8>,
    out: Vec<u8>,
    done: bool,
}

impl<R: Read> RehashReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> RehashReader<R> {
        RehashReader {
            inner,
            sha: Sha256::new(),
            tail: Vec::new(),
            out: Vec::new(),
            done: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self.inner.read(&mut buf)?;
        if n == 0 {
            self.done = true;
            if self.tail.len() == SHA_BYTES {
                self.out.extend_from_slice(&self.sha.finalize_reset());
            } else {
                self.out.append(&mut self.tail);
            }
            self.tail.clear();
            return Ok(());
        }
        self.tail.extend_from_slice(&buf[..n]);
        if self.tail.len() > SHA_BYTES {
            let pass: Vec<u8> = self.tail.drain(..self.tail.len() - SHA_BYTES).collect();
            self.sha.update(&pass);
            self.out.extend_from_slice(&pass);
        }
        Ok(())
    }
}

impl<R: Read> Read for RehashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out.is_empty() && !self.done {
            self.fill()?;
        }
        let n = buf.len().min(self.out.len());
        buf[..n].copy_from_slice(&self.out[..n]);
        self.out.drain(..n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_512n_plus_32_for_every_image_length() {
        for image_len in [0u64, 1, 12, 507, 508, 509, 511, 512, 513, 100_000] {
            let total = envelope_len(image_len);
            assert_eq!(
                total % ENVELOPE_ALIGN_BYTES,
                32,
                "image of {image_len} bytes"
            );
            let footer = envelope_footer(image_len);
            let stated = u32::from_be_bytes(footer[footer.len() - 4..].try_into().unwrap());
            assert_eq!(
                stated as usize,
                footer.len(),
                "the footer states its own length"
            );
        }
    }

    #[test]
    fn rehash_reader_replaces_only_the_trailing_checksum() {
        let mut input = b"some image bytes".to_vec();
        input.extend_from_slice(&[0xAA; SHA_BYTES]);
        let mut out = Vec::new();
        RehashReader::new(&input[..]).read_to_end(&mut out).unwrap();
        assert_eq!(&out[..16], b"some image bytes");
        assert_eq!(&out[16..], Sha256::digest(b"some image bytes").as_slice());
    }

    #[test]
    fn a_flipped_byte_or_a_cut_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = b"not really an image".to_vec();
        body.extend_from_slice(&envelope_footer(body.len() as u64));
        let sha = Sha256::digest(&body);
        let mut file = body.clone();
        file.extend_from_slice(&sha);
        let good = dir.path().join("good.db");
        std::fs::write(&good, &file).unwrap();
        assert!(open_image(&good, false).is_ok());
        file[3] ^= 1;
        let flipped = dir.path().join("flipped.db");
        std::fs::write(&flipped, &file).unwrap();
        let err = open_image(&flipped, false).err().unwrap().to_string();
        assert!(err.contains("SHA-256 mismatch"), "{err}");
        assert!(
            open_image(&flipped, true).is_ok(),
            "--skip-hash-check skips it"
        );
        let cut = dir.path().join("cut.db");
        std::fs::write(&cut, &file[..file.len() - 1]).unwrap();
        let err = open_image(&cut, false).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
