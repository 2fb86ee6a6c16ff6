//! Sending one snapshot: the InstallSnapshot message and the image, in chunks, over a
//! `RaftPeer.InstallSnapshot` call on a connection of its own.
//!
//! Stream layout (see `SnapshotChunk` in `proto/raftkv/raftpb.proto`):
//!
//! ```text
//! chunk 0:    message = InstallSnapshot (metadata, empty data), offset 0, data = bytes 0..1 MiB
//! chunk k:    offset = k MiB, data = the next bytes
//! final:      last = true, sha256 = SHA-256 of the whole image, data empty
//! ```
//!
//! The image is read on a blocking thread (it is an mvcc export that reads the backend as
//! it goes) and handed over through a channel of two chunks, so at most a few MiB are in
//! memory whatever the image size. The outcome goes to `RaftInbox::report_snapshot`.
//!
//! Called only by `GrpcTransport::send_snapshot`, on a task of its own.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::connect::dial;
use super::convert::message_to_pb;
use super::transport::Shared;
use crate::proto::raftkvpb::{self, raft_peer_client::RaftPeerClient};
use crate::raft::Message;

/// Chunks read ahead of the network.
const CHUNKS_IN_FLIGHT: usize = 2;

/// Sends `image` with `msg` to `msg.to` at one of `urls` and reports the outcome.
pub(super) async fn send_snapshot(
    shared: Arc<Shared>,
    urls: Vec<String>,
    msg: Message,
    image: Box<dyn Read + Send>,
) {
    let Some(inbox) = shared.attached().await else {
        return;
    };
    let to = msg.to;
    let index = msg.snapshot.as_ref().map(|s| s.metadata.index.0);
    let result = transfer(&shared, inbox.cluster_id(), &urls, msg, image).await;
    match &result {
        Ok(bytes) => tracing::info!(peer = %to, ?index, bytes, "snapshot sent"),
        Err(why) => tracing::warn!(peer = %to, ?index, error = %why, "snapshot send failed"),
    }
    // The server may block here while its input queue is full: keep that off the runtime.
    let ok = result.is_ok();
    let _ = tokio::task::spawn_blocking(move || inbox.report_snapshot(to, ok)).await;
}

/// Streams the snapshot to the first URL that answers; returns the bytes sent.
async fn transfer(
    shared: &Shared,
    cluster_id: u64,
    urls: &[String],
    mut msg: Message,
    image: Box<dyn Read + Send>,
) -> Result<u64, String> {
    let mut failures = Vec::new();
    let mut channel = None;
    for url in urls {
        match dial(url, &shared.opts.dial).await {
            Ok(c) => {
                channel = Some(c);
                break;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let Some(channel) = channel else {
        return Err(format!("no peer url answered: {}", failures.join("; ")));
    };
    if let Some(s) = msg.snapshot.as_mut() {
        // The image travels in the chunks, never inside the message.
        s.data = Bytes::new();
    }
    let first = message_to_pb(msg);
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let chunk_bytes = shared.opts.snapshot_chunk_bytes;
    let reader =
        tokio::task::spawn_blocking(move || read_chunks(image, cluster_id, first, chunk_bytes, tx));
    let mut client = RaftPeerClient::new(channel).max_decoding_message_size(usize::MAX);
    let call = client.install_snapshot(ReceiverStream::new(rx)).await;
    let read = reader
        .await
        .map_err(|e| format!("image reader task: {e}"))?;
    let sent = read.map_err(|e| format!("reading the image: {e}"))?;
    // Success is the receiver's word: it may accept without reading the whole image (when
    // its store is already at least as new), so `received_bytes` can be below `sent`.
    call.map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    Ok(sent)
}

/// Blocking: reads `image` in chunks of `chunk_bytes` into `tx`, the first one carrying
/// `message`, and ends with the SHA-256. Returns the image size. Stops early (without
/// error) if the receiving side is gone: the call's status then says why.
fn read_chunks(
    mut image: Box<dyn Read + Send>,
    cluster_id: u64,
    message: raftkvpb::Message,
    chunk_bytes: usize,
    tx: mpsc::Sender<raftkvpb::SnapshotChunk>,
) -> io::Result<u64> {
    let mut hasher = Sha256::new();
    let mut message = Some(message);
    let mut offset = 0u64;
    loop {
        let data = read_up_to(&mut image, chunk_bytes)?;
        let last = data.is_empty();
        hasher.update(&data);
        let chunk = raftkvpb::SnapshotChunk {
            cluster_id,
            message: message.take(),
            offset,
            sha256: if last {
                Bytes::copy_from_slice(&hasher.clone().finalize())
            } else {
                Bytes::new()
            },
            last,
            data,
        };
        offset += chunk.data.len() as u64;
        if tx.blocking_send(chunk).is_err() || last {
            return Ok(offset);
        }
    }
}

/// Up to `n` bytes from `r`, fewer only at the end of the image.
fn read_up_to(r: &mut dyn Read, n: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}
