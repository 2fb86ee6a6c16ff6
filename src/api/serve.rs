//! The client listener: etcd's gRPC services and the HTTP routes on ONE port (HTTP/1.1 and
//! h2c alike, as etcd serves them), and the HTTP-only `--listen-metrics-urls` listeners.
//!
//! One axum router carries both: each gRPC service is mounted at `/<package.Service>/*`,
//! the HTTP routes at their paths, and the fallback tells a gRPC call (Unimplemented) from
//! a browser (404). tonic's server drives the connections so that HTTP/2 settings
//! (keepalive, message limits) are the gRPC ones.
//!
//! This file builds and serves; it owns no state beyond what the services hold.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;

use super::authority;
use super::cluster::ClusterService;
use super::grpc_health::health_service;
use super::http;
use super::kv::KvService;
use super::learner;
use super::lease::LeaseService;
use super::maintenance::MaintenanceService;
use super::watch::{WatchOptions, WatchService};
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::server::EtcdServer;

/// gRPC accepts messages this much above `--max-request-bytes`, as etcd does, so that an
/// oversized request reaches the server and gets etcd's `request is too large` error
/// instead of a transport-level failure.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// HTTP/2 settings of the client listener.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// Server pings on idle connections (`--grpc-keepalive-interval`; `None`: never).
    pub keepalive_interval: Option<Duration>,
    /// How long a server ping may go unanswered (`--grpc-keepalive-timeout`).
    pub keepalive_timeout: Duration,
}

/// Every client-facing route: the gRPC services and the HTTP routes. Call inside a tokio
/// runtime (the gRPC health service spawns its updater task).
///
/// `watch_progress_notify_interval`: `--watch-progress-notify-interval`.
pub fn client_router(
    server: EtcdServer,
    max_request_bytes: usize,
    watch_progress_notify_interval: Duration,
) -> axum::Router {
    let limit = max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = KvServer::new(KvService::new(server.clone())).max_decoding_message_size(limit);
    let cluster =
        ClusterServer::new(ClusterService::new(server.clone())).max_decoding_message_size(limit);
    let maintenance = MaintenanceServer::new(MaintenanceService::new(server.clone()))
        .max_decoding_message_size(limit);
    let watch = WatchService::new(
        server.clone(),
        WatchOptions {
            progress_notify_interval: watch_progress_notify_interval,
            fragment_bytes_max: max_request_bytes,
        },
    );
    // Routes::from(Router::new()) has no fallback: the HTTP router's fallback is the one.
    let grpc = Routes::from(axum::Router::new())
        .add_service(kv)
        .add_service(cluster)
        .add_service(maintenance)
        .add_service(WatchServer::new(watch).max_decoding_message_size(limit))
        .add_service(LeaseServer::new(LeaseService::new(server.clone())))
        .add_service(health_service(server.clone()));
    let grpc = grpc
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            learner::refuse_on_learner,
        ));
    grpc.merge(http::router(server))
}

/// Serve `router` on `listener` until `shutdown` completes, then finish in-flight requests.
/// Accepts HTTP/1.1 and h2c on the same port. HTTP/2 pings from clients are always
/// answered (hyper enforces no minimum ping interval), so clients pinging every 5 s, as
/// etcd's `--grpc-keepalive-min-time` allows, are never sent away.
pub async fn serve_client(
    listener: TcpListener,
    router: axum::Router,
    opts: ClientOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(opts.keepalive_interval)
        .http2_keepalive_timeout(Some(opts.keepalive_timeout))
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(bridged(listener), shutdown)
        .await
}

/// Accepted connections, each bridged through `authority::bridge`.
fn bridged(
    listener: TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::io::DuplexStream>> + Send + 'static {
    TcpListenerStream::new(listener).map_ok(|tcp| {
        // Small unary RPCs must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        authority::bridge(tcp)
    })
}

/// Serve only the HTTP routes (`/metrics`, `/health`, ...) on a `--listen-metrics-urls`
/// listener until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    server: EtcdServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(server))
        .with_graceful_shutdown(shutdown)
        .await
}
