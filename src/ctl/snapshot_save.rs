//! `raftkvctl snapshot save FILE`: what `etcdctl snapshot save` does (stream
//! `Maintenance.Snapshot` from one member into `FILE.part`, fsync, rename to `FILE`), plus a
//! progress line every tenth of the image (from the stream's `remaining_bytes`) and a check
//! of the finished file (structure and trailing SHA-256) before it is called saved.
//!
//! Online: talks to exactly one member. Never leaves a partial `FILE` behind: a failed
//! save removes `FILE.part`. Called by `src/ctl/mod.rs`; the file check is
//! `crate::server::snapshot_file_status`, shared with `snapshot status`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::Streaming;

use super::client;
use super::CtlError;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::{SnapshotRequest, SnapshotResponse};
use crate::server::{self, ProgressMeter};

/// Saves one member's snapshot to `file` (see the module doc) and prints where, with the
/// image's revision, key count and size.
pub async fn save(
    endpoints: &[String],
    dial_timeout: Duration,
    file: &Path,
) -> Result<(), CtlError> {
    let [endpoint] = endpoints else {
        return Err(CtlError::Snapshot(
            "snapshot must be requested to one selected node, not multiple".into(),
        ));
    };
    let started = Instant::now();
    let channel = client::connect_streaming(endpoint, dial_timeout).await?;
    let stream = MaintenanceClient::new(channel)
        .snapshot(SnapshotRequest {})
        .await
        .map_err(|status| CtlError::rpc(endpoint, status))?
        .into_inner();
    let part = part_path(file);
    let written = match receive(endpoint, stream, &part).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    let checked = server::snapshot_file_status(&part).map_err(|e| {
        let _ = std::fs::remove_file(&part);
        CtlError::Snapshot(format!("the received image is damaged: {e}"))
    })?;
    std::fs::rename(&part, file).map_err(|e| io_error("renaming", &part, e))?;
    println!(
        "Snapshot saved at {} (revision {}, {} keys, {:.1} MB, in {:.2?})",
        file.display(),
        checked.revision,
        checked.total_keys,
        written as f64 / 1e6,
        started.elapsed()
    );
    Ok(())
}

fn part_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> CtlError {
    CtlError::Snapshot(format!("{what} {}: {e}", path.display()))
}

/// Writes the stream into `part`, fsyncs it, and returns the bytes written.
async fn receive(
    endpoint: &str,
    mut stream: Streaming<SnapshotResponse>,
    part: &Path,
) -> Result<u64, CtlError> {
    let out = std::fs::File::create(part).map_err(|e| io_error("creating", part, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut meter: Option<ProgressMeter> = None;
    let mut written = 0u64;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|status| CtlError::rpc(endpoint, status))?
    {
        let n = chunk.blob.len() as u64;
        meter
            .get_or_insert_with(|| ProgressMeter::new("saving", n + chunk.remaining_bytes))
            .advance(n);
        out.write_all(&chunk.blob)
            .map_err(|e| io_error("writing", part, e))?;
        written += n;
    }
    let file = out
        .into_inner()
        .map_err(|e| io_error("writing", part, e.into_error()))?;
    file.sync_all().map_err(|e| io_error("syncing", part, e))?;
    Ok(written)
}
