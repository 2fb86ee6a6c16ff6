//! Connections from `raftkvctl` to a cluster's client endpoints.
//!
//! Endpoints are what users type (`127.0.0.1:2379`, `http://host:2379`, as etcdctl takes them);
//! this file turns them into tonic channels. It knows nothing of what is sent over them. The
//! kv, status and bench commands call it.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::error::CtlError;

/// Turns `host:port` or `http://host:port` into the `http://host:port` URI tonic wants.
/// `https://` is refused: raftkv speaks plain HTTP/2 for now.
pub fn endpoint_uri(endpoint: &str) -> Result<String, CtlError> {
    let invalid = |reason: &str| CtlError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.starts_with("https://") {
        return Err(invalid("TLS is not supported; use http://"));
    }
    let host_port = trimmed.strip_prefix("http://").unwrap_or(trimmed);
    let Some((host, port)) = host_port.rsplit_once(':') else {
        return Err(invalid("expected host:port"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid("expected host:port with a numeric port"));
    }
    Ok(format!("http://{host_port}"))
}

/// Connects one channel to `endpoint`, waiting at most `dial_timeout`. Requests on it time
/// out after `request_timeout`.
pub async fn connect(
    endpoint: &str,
    dial_timeout: Duration,
    request_timeout: Duration,
) -> Result<Channel, CtlError> {
    dial(endpoint, dial_timeout, Some(request_timeout)).await
}

/// Connects a channel for long-lived streams (Watch): tonic's request timeout would cut a
/// stream after that long, so this channel has none.
pub async fn connect_streaming(
    endpoint: &str,
    dial_timeout: Duration,
) -> Result<Channel, CtlError> {
    dial(endpoint, dial_timeout, None).await
}

async fn dial(
    endpoint: &str,
    dial_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Channel, CtlError> {
    let uri = endpoint_uri(endpoint)?;
    let unreachable = |error: String| CtlError::Unreachable {
        endpoints: endpoint.to_string(),
        last_error: error,
    };
    let mut builder = Endpoint::from_shared(uri)
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(dial_timeout)
        .tcp_nodelay(true);
    if let Some(timeout) = request_timeout {
        builder = builder.timeout(timeout);
    }
    match tokio::time::timeout(dial_timeout, builder.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(error)) => Err(unreachable(error_chain(&error))),
        Err(_) => Err(unreachable(format!(
            "no connection within {dial_timeout:?}"
        ))),
    }
}

/// Connects to the first endpoint that answers, in the order given (like etcdctl, which a
/// follower serves just as well: it forwards writes to the leader). Returns the endpoint too.
pub async fn connect_any(
    endpoints: &[String],
    dial_timeout: Duration,
    request_timeout: Duration,
) -> Result<(String, Channel), CtlError> {
    let mut last_error = String::from("no endpoints given");
    for endpoint in endpoints {
        match connect(endpoint, dial_timeout, request_timeout).await {
            Ok(channel) => return Ok((endpoint.clone(), channel)),
            Err(CtlError::Unreachable { last_error: e, .. }) => last_error = e,
            Err(other) => return Err(other),
        }
    }
    Err(CtlError::Unreachable {
        endpoints: endpoints.join(","),
        last_error,
    })
}

/// An error with its causes ("transport error: connection refused"), since tonic's top-level
/// message alone rarely says what happened.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut previous = text.clone();
    while let Some(cause) = source {
        // hyper and tonic often wrap an error in one with the same message: say it once.
        let message = cause.to_string();
        if message != previous {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
        previous = message;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_etcdctl_forms() {
        assert_eq!(
            endpoint_uri("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_uri("http://localhost:22379/").unwrap(),
            "http://localhost:22379"
        );
    }

    #[test]
    fn endpoints_without_port_or_with_tls_are_refused() {
        assert!(endpoint_uri("localhost").is_err());
        assert!(endpoint_uri("localhost:http").is_err());
        assert!(endpoint_uri("https://localhost:2379").is_err());
    }
}
