//! The plain-HTTP routes etcd serves next to gRPC: `/health`, `/livez`, `/readyz`,
//! `/version` and `/metrics`, as one axum [`Router`] that `serve.rs` mounts on the client
//! listener (beside the gRPC services) and alone on each `--listen-metrics-urls` listener.
//!
//! Bodies and status codes follow etcd 3.5 (checked against a real etcd where 3.4 and 3.5
//! agree): `/health` answers `{"health":"true","reason":""}` with 200, or
//! `{"health":"false","reason":"RAFT NO LEADER"}` with 503; unknown paths answer
//! `404 page not found`. An active alarm fails `/health` with `ALARM NOSPACE` or
//! `ALARM CORRUPT`; CORRUPT also fails `/readyz` (etcd's `data_corruption` check).
//! Kubernetes probes `/livez`, `/readyz` and `/health?exclude=NOSPACE&serializable=true` on
//! the metrics listener.
//!
//! This file reads the server's state; it never changes it.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::server::{EtcdServer, CLUSTER_VERSION, SERVER_VERSION};

/// How long `/health` and `/readyz` wait for a linearizable read before failing (etcd waits
/// for its request timeout, 5 s plus the election timeout, but probes time out sooner).
const READ_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The HTTP routes, sharing `server` for their checks.
pub fn router(server: EtcdServer) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(server)
}

/// The `/health` body; field order is etcd's.
#[derive(Serialize)]
struct Health {
    health: &'static str,
    reason: String,
}

/// `/health[?exclude=ALARM][&serializable=true]`: healthy when no alarm is active (except
/// the excluded one, e.g. `exclude=NOSPACE`), a leader is known and (unless
/// `serializable`) a linearizable read completes.
async fn health(
    State(server): State<EtcdServer>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let serializable = params.get("serializable").is_some_and(|v| v == "true");
    let excluded = params.get("exclude").map(String::as_str).unwrap_or("");
    let checked = match alarm_reason(&server, excluded) {
        Some(reason) => Err(reason),
        None => check_health(&server, serializable).await,
    };
    let verdict = match checked {
        Ok(()) => Health {
            health: "true",
            reason: String::new(),
        },
        Err(reason) => Health {
            health: "false",
            reason,
        },
    };
    let status = if verdict.health == "true" {
        StatusCode::OK
    } else {
        tracing::warn!(reason = %verdict.reason, "serving /health false");
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string(&verdict).expect("a two-string struct serializes");
    (status, [(header::CONTENT_TYPE, TEXT_PLAIN)], body).into_response()
}

/// etcd's reason for the first active alarm not `excluded` (`ALARM NOSPACE`, ...).
fn alarm_reason(server: &EtcdServer, excluded: &str) -> Option<String> {
    use crate::proto::etcdserverpb::AlarmType;
    server.alarms().into_iter().find_map(|a| {
        let name = match AlarmType::try_from(a.alarm) {
            Ok(AlarmType::Nospace) => "NOSPACE",
            Ok(AlarmType::Corrupt) => "CORRUPT",
            _ => "UNKNOWN",
        };
        (name != excluded).then(|| format!("ALARM {name}"))
    })
}

/// Whether any member has raised CORRUPT.
fn corrupt_alarm(server: &EtcdServer) -> bool {
    use crate::proto::etcdserverpb::AlarmType;
    server
        .alarms()
        .iter()
        .any(|a| a.alarm == AlarmType::Corrupt as i32)
}

/// The checks behind `/health`, in etcd's order, with etcd's reason strings.
async fn check_health(server: &EtcdServer, serializable: bool) -> Result<(), String> {
    if server.leader().is_none() {
        return Err("RAFT NO LEADER".to_string());
    }
    if serializable {
        return Ok(());
    }
    linearizable_read(server)
        .await
        .map_err(|e| format!("QGET ERROR:{e}"))
}

/// One ReadIndex round, bounded by [`READ_CHECK_TIMEOUT`].
async fn linearizable_read(server: &EtcdServer) -> Result<(), String> {
    match tokio::time::timeout(READ_CHECK_TIMEOUT, server.linearizable_barrier()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.message()),
        Err(_elapsed) => Err("etcdserver: request timed out".to_string()),
    }
}

/// `/livez`: the process is up and serving HTTP. etcd's livez also fails on a stuck
/// backend; our driver stops the member on storage failure instead.
async fn livez() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_PLAIN)], "ok").into_response()
}

/// `/readyz`: no CORRUPT alarm (etcd's `data_corruption` check), a leader is known and a
/// linearizable read completes.
async fn readyz(State(server): State<EtcdServer>) -> Response {
    if corrupt_alarm(&server) {
        tracing::warn!("serving /readyz failed: the CORRUPT alarm is active");
        let body = "[-]data_corruption failed: reason withheld\nreadyz check failed\n";
        let headers = [(header::CONTENT_TYPE, TEXT_PLAIN)];
        return (StatusCode::SERVICE_UNAVAILABLE, headers, body).into_response();
    }
    match check_health(&server, false).await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, TEXT_PLAIN)],
            "ok".to_string(),
        ),
        Err(reason) => {
            tracing::warn!(%reason, "serving /readyz failed");
            let body = "[-]linearizable_read failed: reason withheld\nreadyz check failed\n";
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, TEXT_PLAIN)],
                body.into(),
            )
        }
    }
    .into_response()
}

/// `/version`: the etcd versions we claim to be, which clients gate features on.
async fn version() -> Response {
    let body = format!(r#"{{"etcdserver":"{SERVER_VERSION}","etcdcluster":"{CLUSTER_VERSION}"}}"#);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `/metrics`: the server's registry in the OpenMetrics text format (Prometheus reads it).
async fn metrics(State(server): State<EtcdServer>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let body = server.metrics().encode_text();
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An unknown path: a gRPC call to a service we do not serve gets gRPC's Unimplemented
/// (what tonic answers); anything else gets Go's `http.NotFound`, byte for byte.
async fn not_found(headers: HeaderMap) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("").into_http();
    }
    let body = "404 page not found\n";
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, TEXT_PLAIN)],
        body,
    )
        .into_response()
}
