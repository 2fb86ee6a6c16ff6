//! The standard `grpc.health.v1.Health` service (tonic-health) on the client listener, with
//! the serving status following whether this member knows a leader, as etcd's does.
//!
//! A background task polls [`EtcdServer::leader`] and updates the reporter only when the
//! answer changes; it ends with the runtime.

use std::time::Duration;

use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::{health_reporter, HealthReporter};
use tonic_health::ServingStatus;

use crate::server::EtcdServer;

/// How often the leader is re-checked: well under an election timeout, so a probe sees a
/// lost leader about as soon as clients do.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The health service, and a task (on the current runtime) that keeps it up to date.
pub fn health_service(server: EtcdServer) -> HealthServer<impl Health> {
    let (reporter, service) = health_reporter();
    tokio::spawn(follow_leader(server, reporter));
    service
}

/// Serving while a leader is known, NotServing otherwise (the empty service name, which is
/// what clients and etcd's own probes ask for).
async fn follow_leader(server: EtcdServer, reporter: HealthReporter) {
    let mut last: Option<ServingStatus> = None;
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        ticker.tick().await;
        let status = match server.leader() {
            Some(_) => ServingStatus::Serving,
            None => ServingStatus::NotServing,
        };
        if last != Some(status) {
            reporter.set_service_status("", status).await;
            last = Some(status);
        }
    }
}
