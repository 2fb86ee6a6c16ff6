//! Receiving one snapshot: the `RaftPeer.InstallSnapshot` stream is checked chunk by chunk
//! (cluster id, offsets without gaps, SHA-256 at the end) and fed, through a bounded
//! channel, to `RaftInbox::install_snapshot` running on a blocking thread as an
//! [`io::Read`].
//!
//! The image is never held in memory whole: at most [`CHUNKS_IN_FLIGHT`] chunks wait
//! between the network and the installer. Because the SHA-256 comes last, the installer
//! has already consumed the image when it is checked; so [`ChunkReader`] reports a clean
//! end of file only after the checksum matched, and an `InvalidData` error otherwise. The
//! installer (mvcc's `install_snapshot`) reads to end of file before it promotes anything,
//! so a corrupt or truncated transfer leaves the store unchanged.
//!
//! Called by `super::service::RaftPeerService::install_snapshot`.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::convert::message_from_pb;
use crate::proto::raftkvpb;
use crate::raft::MessageKind;
use crate::server::RaftInbox;

/// Chunks buffered between the network and the installer.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// What the network side hands to the reader.
enum Piece {
    Data(Bytes),
    /// The checksum matched: the image is complete.
    End,
    /// The transfer failed; the text says why.
    Fail(String),
}

/// The image as the installer sees it; see the module docs for how errors surface.
struct ChunkReader {
    rx: mpsc::Receiver<Piece>,
    current: Bytes,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => self.current = b,
                Some(Piece::End) => self.done = true,
                Some(Piece::Fail(why)) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why))
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "snapshot transfer ended early",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Receives one snapshot from `stream` and installs it through `inbox`; returns the image
/// bytes received until the installer finished (fewer than sent if it accepted without
/// reading the whole image: its store was already as new). Errors are what the sender sees.
pub async fn receive(
    inbox: Arc<dyn RaftInbox>,
    mut stream: Streaming<raftkvpb::SnapshotChunk>,
) -> Result<u64, Status> {
    let mut first = stream
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
    check_cluster(&*inbox, first.cluster_id)?;
    let pb = first
        .message
        .take()
        .ok_or_else(|| Status::invalid_argument("first snapshot chunk carries no message"))?;
    let msg = message_from_pb(pb).map_err(|e| Status::invalid_argument(e.to_string()))?;
    if msg.kind != MessageKind::InstallSnapshot {
        return Err(Status::invalid_argument(format!(
            "snapshot stream carries a {:?} message",
            msg.kind
        )));
    }
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let reader = ChunkReader {
        rx,
        current: Bytes::new(),
        done: false,
    };
    let installer = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        inbox.install_snapshot(msg, &mut reader)
    });
    let fed = feed(first, &mut stream, &tx).await;
    drop(tx);
    let installed = installer
        .await
        .map_err(|e| Status::internal(format!("snapshot installer task: {e}")))?;
    // A transfer error explains an installer error, so it wins.
    let bytes = fed?;
    installed.map_err(|e| Status::new(e.code(), e.message()))?;
    Ok(bytes)
}

/// Checks and forwards every chunk, `first` included; returns the image size once the
/// checksum matched. On error the reader is told (it then fails the install) and the
/// error returned.
async fn feed(
    first: raftkvpb::SnapshotChunk,
    stream: &mut Streaming<raftkvpb::SnapshotChunk>,
    tx: &mpsc::Sender<Piece>,
) -> Result<u64, Status> {
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    let mut chunk = first;
    let result = loop {
        if let Err(e) = check_chunk(&chunk, offset) {
            break Err(e);
        }
        hasher.update(&chunk.data);
        offset += chunk.data.len() as u64;
        let last = chunk.last;
        let sha256 = chunk.sha256.clone();
        if !chunk.data.is_empty() && tx.send(Piece::Data(chunk.data)).await.is_err() {
            // The installer stopped reading: its own error says why.
            break Ok(offset);
        }
        if last {
            break if hasher.finalize().as_slice() == sha256.as_ref() {
                Ok(offset)
            } else {
                Err(Status::data_loss("snapshot SHA-256 mismatch"))
            };
        }
        chunk = match stream.message().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                break Err(Status::invalid_argument(
                    "snapshot stream ended without last chunk",
                ))
            }
            Err(status) => break Err(status),
        };
    };
    let piece = match &result {
        Ok(_) => Piece::End,
        Err(status) => Piece::Fail(status.message().to_string()),
    };
    let _ = tx.send(piece).await;
    result
}

/// A chunk must continue the image exactly where the previous one stopped.
fn check_chunk(chunk: &raftkvpb::SnapshotChunk, offset: u64) -> Result<(), Status> {
    if chunk.offset != offset {
        return Err(Status::invalid_argument(format!(
            "snapshot chunk at offset {} where {offset} expected",
            chunk.offset
        )));
    }
    if offset > 0 && chunk.message.is_some() {
        return Err(Status::invalid_argument(
            "snapshot message repeated in a later chunk",
        ));
    }
    Ok(())
}

/// Refuses traffic from another cluster.
pub fn check_cluster(inbox: &dyn RaftInbox, cluster_id: u64) -> Result<(), Status> {
    let local = inbox.cluster_id();
    if cluster_id != local {
        return Err(Status::failed_precondition(format!(
            "cluster id mismatch: peer is in cluster {cluster_id:x}, this member in {local:x}"
        )));
    }
    Ok(())
}
