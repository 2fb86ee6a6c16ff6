//! The life of one `raftkv` process after its flags are parsed: bind every listener, start
//! the server with the gRPC peer transport, serve clients, peers and metrics, and stop
//! gracefully on SIGINT/SIGTERM.
//!
//! Construction order (see `src/peer/transport.rs`): the transport first (the server sends
//! through it), then the server, then `attach` (the transport reports into the server's
//! inbox). Listeners are bound before the server starts so a taken port fails fast, before
//! anything touches the data dir. With `--experimental-initial-corrupt-check`, the member
//! compares its data with its peers' after the server starts and before any listener
//! serves (etcd's order for clients), and exits on a mismatch.
//!
//! `src/bin/raftkv.rs` calls [`run`]; tests run the binary itself.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::corrupt_check::{initial_corrupt_check, spawn_corrupt_monitor};
use super::serve::{client_router, serve_client, serve_metrics, ClientOptions};
use super::Settings;
use crate::peer::{self, GrpcTransport, TransportOptions};
use crate::server::{EtcdServer, ServerError};

/// How long in-flight requests get to finish after a stop signal before the server stops
/// under them (they then fail with `server stopped`).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the process could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listen URL could not be bound (taken port, foreign address).
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address from the listen URL.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server refused to start (configuration, data dir, storage).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The initial corruption check found this member's data differs from its peers'
    /// (`<member id> found data inconsistency with peers`), or could not hash it.
    #[error("{0}")]
    InitialCorruptCheck(String),
    /// A member joining with `--initial-cluster-state existing` could not learn the
    /// cluster.
    #[error(transparent)]
    Join(#[from] peer::join::JoinError),
    /// A listener failed while serving.
    #[error("serving failed: {0}")]
    Serve(String),
}

/// Every bound listener, before anything else starts.
struct Listeners {
    client: Vec<TcpListener>,
    peer: Vec<TcpListener>,
    metrics: Vec<TcpListener>,
}

impl Listeners {
    async fn bind(s: &Settings) -> Result<Listeners, RunError> {
        Ok(Listeners {
            client: bind_all(&s.listen_client).await?,
            peer: bind_all(&s.listen_peer).await?,
            metrics: bind_all(&s.listen_metrics).await?,
        })
    }
}

async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, RunError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Bind { addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Run one member until `stop` completes (or a listener fails), then stop gracefully.
/// Must run on a multi-threaded tokio runtime (the server starts on a blocking section).
pub async fn run(settings: Settings, stop: impl Future<Output = ()>) -> Result<(), RunError> {
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let listeners = Listeners::bind(&settings).await?;
    let transport = GrpcTransport::new(TransportOptions::default());
    let cfg = settings.server.clone();
    let existing = if EtcdServer::needs_join(&cfg) {
        let peers = other_peer_urls(&cfg);
        Some(peer::join::fetch_cluster(&peers, &cfg.advertise_peer_urls).await?)
    } else {
        None
    };
    // A member joining now has no data of its own to check yet (etcd skips the initial
    // check for a member that is not initialized).
    let joining = existing.is_some();
    let server = tokio::task::block_in_place(|| {
        EtcdServer::start_joining(cfg, transport.clone(), existing)
    })?;
    transport.attach(server.inbox());
    if let Some(policy) = settings.auto_compaction {
        crate::server::spawn_auto_compactor(server.clone(), policy);
    }
    if settings.initial_corrupt_check && joining {
        tracing::info!("skipping the initial corruption check: this member is joining");
    } else if settings.initial_corrupt_check {
        if let Err(e) = initial_corrupt_check(&server).await {
            tokio::task::block_in_place(|| server.stop());
            return Err(RunError::InitialCorruptCheck(e));
        }
    }
    if let Some(interval) = settings.corrupt_check_time {
        spawn_corrupt_monitor(server.clone(), interval);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = spawn_listeners(&settings, listeners, &server, &stop_rx);
    tracing::info!(
        name = %settings.server.name,
        client = ?settings.listen_client,
        peer = ?settings.listen_peer,
        metrics = ?settings.listen_metrics,
        "serving"
    );
    let outcome = tokio::select! {
        () = stop => {
            tracing::info!("received stop signal, stopping");
            Ok(())
        }
        Some(joined) = tasks.join_next() => Err(RunError::Serve(task_failure(joined))),
        () = server.removed() => {
            tracing::warn!("the member has been permanently removed from the cluster; exiting");
            Ok(())
        }
    };
    stop_tx.send_replace(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("in-flight requests did not finish in {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    tokio::task::block_in_place(|| server.stop());
    tracing::info!("stopped");
    outcome
}

/// The peer URLs of `--initial-cluster` other than this member's own.
fn other_peer_urls(cfg: &crate::server::ServerConfig) -> Vec<String> {
    cfg.initial_cluster
        .iter()
        .flat_map(|(_, urls)| urls.iter())
        .filter(|u| !cfg.advertise_peer_urls.contains(u))
        .cloned()
        .collect()
}

/// One task per listener; each ends when `stop` turns true.
fn spawn_listeners(
    s: &Settings,
    listeners: Listeners,
    server: &EtcdServer,
    stop: &watch::Receiver<bool>,
) -> JoinSet<Result<(), String>> {
    let mut tasks = JoinSet::new();
    for listener in listeners.peer {
        let inbox = server.inbox();
        let stopped = stopped(stop.clone());
        tasks.spawn(async move {
            peer::serve(listener, inbox, stopped)
                .await
                .map_err(|e| format!("peer: {e}"))
        });
    }
    let router = client_router(
        server.clone(),
        s.server.max_request_bytes,
        s.watch_progress_notify_interval,
    );
    let opts = ClientOptions {
        keepalive_interval: s.grpc_keepalive_interval,
        keepalive_timeout: s.grpc_keepalive_timeout,
    };
    for listener in listeners.client {
        let serving = serve_client(listener, router.clone(), opts, stopped(stop.clone()));
        tasks.spawn(async move { serving.await.map_err(|e| format!("client: {e}")) });
    }
    for listener in listeners.metrics {
        let serving = serve_metrics(listener, server.clone(), stopped(stop.clone()));
        tasks.spawn(async move { serving.await.map_err(|e| format!("metrics: {e}")) });
    }
    tasks
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// What a listener task that ended on its own reports.
fn task_failure(joined: Result<Result<(), String>, tokio::task::JoinError>) -> String {
    match joined {
        Ok(Ok(())) => "a listener stopped unexpectedly".to_string(),
        Ok(Err(e)) => e,
        Err(e) => format!("a listener task panicked: {e}"),
    }
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on a fresh runtime");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
