//! `raftkvctl status`: asks every endpoint for its Maintenance `Status` and prints one
//! aligned row per endpoint.
//!
//! Columns, in order, whitespace-free so scripts can split them: endpoint, member id, leader
//! id (hex, like etcdctl), revision, raft term, raft index, db size, version, and `*` on the
//! leader's row. An endpoint that fails gets a row with its error; the command then fails.
//! Endpoints are asked concurrently so one dead member costs one dial timeout, not N.

use std::time::Duration;

use super::client;
use super::error::CtlError;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::{StatusRequest, StatusResponse};

const HEADER: [&str; 9] = [
    "ENDPOINT",
    "ID",
    "LEADER",
    "REVISION",
    "TERM",
    "INDEX",
    "DB_SIZE",
    "VERSION",
    "IS_LEADER",
];

/// Asks one endpoint for its status.
pub async fn status_of(
    endpoint: &str,
    dial_timeout: Duration,
    request_timeout: Duration,
) -> Result<StatusResponse, CtlError> {
    let channel = client::connect(endpoint, dial_timeout, request_timeout).await?;
    let response = MaintenanceClient::new(channel)
        .status(StatusRequest {})
        .await
        .map_err(|status| CtlError::rpc(endpoint, status))?;
    Ok(response.into_inner())
}

/// Asks every endpoint concurrently; answers come back in the endpoints' order.
pub async fn status_all(
    endpoints: &[String],
    dial_timeout: Duration,
    request_timeout: Duration,
) -> Vec<Result<StatusResponse, CtlError>> {
    let tasks: Vec<_> = endpoints
        .iter()
        .cloned()
        .map(|endpoint| {
            tokio::spawn(async move { status_of(&endpoint, dial_timeout, request_timeout).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("status task panicked"));
    }
    results
}

/// Formats the status table (header, then one row per endpoint).
pub fn format_table(endpoints: &[String], results: &[Result<StatusResponse, CtlError>]) -> String {
    let mut rows = vec![HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for (endpoint, result) in endpoints.iter().zip(results) {
        rows.push(match result {
            Ok(status) => status_row(endpoint, status),
            Err(error) => vec![endpoint.clone(), format!("error: {error}")],
        });
    }
    align(&rows)
}

fn status_row(endpoint: &str, status: &StatusResponse) -> Vec<String> {
    let (member_id, revision, term) = status
        .header
        .as_ref()
        .map_or((0, 0, 0), |h| (h.member_id, h.revision, h.raft_term));
    let is_leader = status.leader != 0 && status.leader == member_id;
    vec![
        endpoint.to_string(),
        format!("{member_id:x}"),
        format!("{:x}", status.leader),
        revision.to_string(),
        term.to_string(),
        status.raft_index.to_string(),
        format_bytes(status.db_size),
        status.version.clone(),
        if is_leader { "*" } else { "-" }.to_string(),
    ]
}

/// Pads every cell but a row's last to its column's widest such cell (a row's last cell, like
/// an error message, does not widen its column).
fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let cells = rows.iter().filter(|r| c + 1 < r.len()).map(|r| r[c].len());
            cells.max().unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[c])
                }
            })
            .collect();
        text.push_str(&cells.join("  "));
        text.push('\n');
    }
    text
}

/// `20480` -> `20KiB`: binary units, no space, so columns stay whitespace-free.
pub fn format_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::ResponseHeader;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(20 * 1024), "20.0KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 / 2), "1.5MiB");
    }

    #[test]
    fn table_marks_the_leader_and_shows_errors() {
        let leader = StatusResponse {
            header: Some(ResponseHeader {
                member_id: 0xab,
                revision: 7,
                raft_term: 2,
                ..Default::default()
            }),
            leader: 0xab,
            version: "3.4.23".into(),
            db_size: 20480,
            ..Default::default()
        };
        let endpoints = vec!["a:1".to_string(), "b:2".to_string()];
        let results = vec![Ok(leader), Err(CtlError::BenchFailed(1))];
        let table = format_table(&endpoints, &results);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            ["a:1", "ab", "ab", "7", "2", "0", "20.0KiB", "3.4.23", "*"]
        );
        assert!(lines[2].contains("error:"), "{table}");
    }
}
