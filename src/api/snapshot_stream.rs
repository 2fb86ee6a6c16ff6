//! `Maintenance.Snapshot`: stream this member's store image to the client in chunks of
//! about [`CHUNK_BYTES`], each with `remaining_bytes` (bytes still to come after it), as
//! etcd does, wrapped in the envelope of `crate::server::snapshot_file` (padding to
//! 512 * n bytes, then the SHA-256 of everything before), which is what etcdctl 3.4 checks
//! before it keeps the file.
//!
//! The export is read on a blocking thread and handed over through a small bounded channel:
//! a slow client slows the export, never the member's writes (the export holds no lock).
//! A client that goes away ends the export. Called by `maintenance.rs` only.

use std::pin::Pin;

use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::proto::etcdserverpb as pb;
use crate::server::{envelope_footer, envelope_len, EtcdServer};

/// Target bytes per SnapshotResponse (etcd sends 32 KiB blobs).
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Chunks buffered between the export thread and the gRPC stream.
const CHUNKS_IN_FLIGHT: usize = 16;

/// The response stream type of the Snapshot RPC.
pub type SnapshotChunks = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

/// Starts the export and returns the stream of its chunks.
pub fn snapshot_stream(server: &EtcdServer) -> Result<SnapshotChunks, Status> {
    let mut reader = server.snapshot()?;
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let server = server.clone();
    tokio::task::spawn_blocking(move || {
        let total = envelope_len(reader.total_bytes());
        let mut sent: u64 = 0;
        let mut image_len: u64 = 0;
        let mut sha = Sha256::new();
        let mut blob = Vec::with_capacity(CHUNK_BYTES * 2);
        loop {
            let next = match reader.next_chunk() {
                Ok(next) => next,
                Err(e) => {
                    let status = Status::from(crate::server::ServerError::from(e));
                    let _ = tx.blocking_send(Err(status));
                    return;
                }
            };
            let end = next.is_none();
            match next {
                Some(chunk) => {
                    image_len += chunk.len() as u64;
                    sha.update(&chunk);
                    blob.extend_from_slice(&chunk);
                }
                None => {
                    let footer = envelope_footer(image_len);
                    sha.update(&footer);
                    blob.extend_from_slice(&footer);
                    blob.extend_from_slice(&sha.finalize_reset());
                }
            }
            if blob.len() < CHUNK_BYTES && !end {
                continue;
            }
            if !blob.is_empty() || sent == 0 {
                sent += blob.len() as u64;
                let response = pb::SnapshotResponse {
                    header: Some(server.header()),
                    remaining_bytes: if end { 0 } else { total.saturating_sub(sent) },
                    blob: std::mem::take(&mut blob).into(),
                    version: crate::server::SERVER_VERSION.to_string(),
                };
                if tx.blocking_send(Ok(response)).is_err() {
                    return; // the client went away
                }
            }
            if end {
                return;
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
