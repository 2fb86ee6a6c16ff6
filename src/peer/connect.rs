//! Dialing a peer: peer URL validation and the tonic [`Endpoint`] settings every outgoing
//! peer connection uses (connect timeout, TCP_NODELAY, HTTP/2 keepalive).
//!
//! Peer URLs are etcd style, `http://host:port`. TLS (`https://`) is not implemented; such a
//! URL is refused here rather than silently dialed in clear text.
//!
//! Called by the per-peer stream task (`super::peer_stream`) and the snapshot sender
//! (`super::snapshot_send`); nothing else opens peer connections.

use std::time::Duration;

use thiserror::Error;
use tonic::transport::{Channel, Endpoint};

/// Why a peer could not be dialed.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The URL is not of the form `http://host:port`.
    #[error("bad peer url {url:?}: {why}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The TCP or HTTP/2 handshake failed or timed out.
    #[error("connecting to {url}: {source}")]
    Dial {
        /// The URL dialed.
        url: String,
        /// The transport's error.
        source: tonic::transport::Error,
    },
}

/// HTTP/2 flow-control windows of peer connections (both directions use the same). The
/// default 64 KiB stream window would cap a stream at one window per round trip; Raft
/// appends and snapshot chunks are up to a few MiB.
pub const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// See [`STREAM_WINDOW_BYTES`]; a connection carries one message stream and at most one
/// snapshot stream.
pub const CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// Timing of peer connections.
#[derive(Clone, Debug)]
pub struct DialOptions {
    /// How long a TCP + HTTP/2 handshake may take.
    pub connect_timeout: Duration,
    /// How often an HTTP/2 PING checks an open connection (also while idle).
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection counts as dead.
    pub keepalive_timeout: Duration,
}

impl Default for DialOptions {
    fn default() -> DialOptions {
        DialOptions {
            connect_timeout: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
        }
    }
}

/// Checks that `url` is `http://host:port` (etcd's peer URL form, no path).
pub fn check_peer_url(url: &str) -> Result<(), ConnectError> {
    let bad = |why: &str| ConnectError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let uri: tonic::codegen::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("https (TLS) peer URLs are not supported")),
        _ => return Err(bad("scheme must be http")),
    }
    if uri.host().is_none_or(str::is_empty) || uri.port_u16().is_none() {
        return Err(bad("host and port are required"));
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(bad("a path is not allowed"));
    }
    Ok(())
}

/// Opens one HTTP/2 connection to `url`.
pub async fn dial(url: &str, opts: &DialOptions) -> Result<Channel, ConnectError> {
    check_peer_url(url)?;
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| ConnectError::BadUrl {
            url: url.to_string(),
            why: e.to_string(),
        })?
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(opts.keepalive_interval)
        .keep_alive_timeout(opts.keepalive_timeout)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    endpoint
        .connect()
        .await
        .map_err(|source| ConnectError::Dial {
            url: url.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::check_peer_url;

    #[test]
    fn only_plain_http_host_port_urls_are_accepted() {
        assert!(check_peer_url("http://127.0.0.1:2380").is_ok());
        assert!(check_peer_url("http://localhost:2380/").is_ok());
        for bad in [
            "https://127.0.0.1:2380",
            "unix:///tmp/x",
            "http://127.0.0.1",
            "http://127.0.0.1:2380/raft",
            "127.0.0.1:2380",
            "",
        ] {
            assert!(check_peer_url(bad).is_err(), "{bad:?} accepted");
        }
    }
}
