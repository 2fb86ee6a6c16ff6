//! `raftkvctl snapshot save|status|restore|verify`: `save` streams a snapshot from a member
//! (online, in `snapshot_save.rs`); the others are etcdutl's offline commands for raftkv's
//! snapshot files (what `etcdctl snapshot save` or `raftkvctl snapshot save` wrote).
//!
//! The work is done by `crate::server` (`snapshot_file_status`, `restore_snapshot`,
//! `verify_snapshot`); this file turns flags into options and results into etcdctl's output
//! formats. Offline except `save`: never run restore on a live data dir.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::args::{SnapshotCommand, SnapshotRestoreArgs};
use super::{snapshot_save, CtlError};
use crate::api::parse_initial_cluster;
use crate::server::{self, RestoreOptions, SnapshotFileStatus};

/// Runs one snapshot subcommand, printing its result to stdout. Only `save` uses the
/// endpoints.
pub async fn run(
    command: &SnapshotCommand,
    endpoints: &[String],
    dial_timeout: Duration,
) -> Result<(), CtlError> {
    match command {
        SnapshotCommand::Status { file, write_out } => {
            let status = server::snapshot_file_status(file).map_err(to_ctl)?;
            print!("{}", format_status(&status, write_out)?);
        }
        SnapshotCommand::Restore(args) => restore(args)?,
        SnapshotCommand::Save { file } => {
            snapshot_save::save(endpoints, dial_timeout, file).await?
        }
        SnapshotCommand::Verify { file } => {
            let started = Instant::now();
            let report = server::verify_snapshot(file).map_err(to_ctl)?;
            let r = report.restored;
            println!(
                "snapshot {} verified: revision {}, applied index {}, hashkv {} (compact \
                 revision {}), restored and reopened in {:.2?}",
                file.display(),
                r.revision,
                r.applied_index,
                r.hash.hash,
                r.hash.compact_revision,
                started.elapsed()
            );
        }
    }
    Ok(())
}

fn to_ctl(e: server::ServerError) -> CtlError {
    CtlError::Snapshot(e.to_string())
}

fn restore(args: &SnapshotRestoreArgs) -> Result<(), CtlError> {
    let initial_cluster = parse_initial_cluster(&args.initial_cluster)
        .map_err(|e| CtlError::Snapshot(format!("invalid --initial-cluster: {e}")))?;
    let opts = RestoreOptions {
        name: args.name.clone(),
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.raftkv", args.name))),
        initial_cluster,
        initial_cluster_token: args.initial_cluster_token.clone(),
        initial_advertise_peer_urls: args
            .initial_advertise_peer_urls
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        skip_hash_check: args.skip_hash_check,
        show_progress: true,
    };
    let started = Instant::now();
    eprintln!(
        "restoring snapshot {} into {}",
        args.file.display(),
        opts.data_dir.display()
    );
    let r = server::restore_snapshot(&args.file, &opts).map_err(to_ctl)?;
    println!(
        "restored snapshot {} into {}: member {:x} of new cluster {:x}, revision {}, applied \
         index {}, hashkv {} (in {:.2?})",
        args.file.display(),
        opts.data_dir.display(),
        r.member_id,
        r.cluster_id,
        r.revision,
        r.applied_index,
        r.hash.hash,
        started.elapsed()
    );
    Ok(())
}

/// etcdctl's `snapshot status` output in `simple`, `table` or `json`.
pub fn format_status(s: &SnapshotFileStatus, write_out: &str) -> Result<String, CtlError> {
    let size = humanize_bytes(s.total_size_bytes);
    match write_out {
        "simple" => Ok(format!(
            "{:x}, {}, {}, {}\n",
            s.hash, s.revision, s.total_keys, size
        )),
        "json" => Ok(format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            s.hash, s.revision, s.total_keys, s.total_size_bytes
        )),
        "table" => Ok(table(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_keys.to_string(),
                size,
            ],
        )),
        other => Err(CtlError::Snapshot(format!(
            "unsupported output format {other:?} (simple, table or json)"
        ))),
    }
}

/// One-row table in etcdctl's (tablewriter's) style: centred headers, right-aligned cells.
fn table(headers: &[&str], row: &[String]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .zip(row)
        .map(|(h, c)| h.len().max(c.len()) + 2)
        .collect();
    let line: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(*w)))
        .collect::<String>()
        + "+\n";
    let mut out = line.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let pad = w - h.len();
        out += &format!("|{}{}{}", " ".repeat(pad / 2), h, " ".repeat(pad - pad / 2));
    }
    out += "|\n";
    out += &line;
    for (c, w) in row.iter().zip(&widths) {
        out += &format!("|{:>width$} ", c, width = w - 1);
    }
    out += "|\n";
    out + &line
}

/// go-humanize's `Bytes`: SI units (1000), one decimal below 10.
pub fn humanize_bytes(n: u64) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", units[e])
    } else {
        format!("{value:.0} {}", units[e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_etcdctl() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(2_101_248), "2.1 MB");
        assert_eq!(humanize_bytes(20_480), "20 kB");
    }

    #[test]
    fn status_table_has_etcdctl_columns() {
        let s = SnapshotFileStatus {
            hash: 0xfe01cf57,
            revision: 10,
            total_keys: 7,
            total_size_bytes: 2_101_248,
            applied_index: 12,
        };
        let t = format_status(&s, "table").unwrap();
        assert!(
            t.contains("|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |"),
            "{t}"
        );
        assert!(
            t.contains("| fe01cf57 |       10 |          7 |     2.1 MB |"),
            "{t}"
        );
        assert_eq!(
            format_status(&s, "simple").unwrap(),
            "fe01cf57, 10, 7, 2.1 MB\n"
        );
    }
}
