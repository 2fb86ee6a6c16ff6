//! [`LeaderChannel`]: a lazily connected gRPC channel to the leader's client URL, for the
//! requests only the leader can answer (lease renewals and lookups, MemberPromote). A
//! follower relays such a request and the leader's answer unchanged.
//!
//! Used by `lease.rs` and `cluster.rs`; knows nothing about the requests it carries.

use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::server::{EtcdServer, ServerError};

/// How long a follower waits to learn the leader's client URL before `no leader`.
pub const LEADER_WAIT: Duration = Duration::from_secs(3);

/// How often it looks while waiting.
pub const LEADER_POLL: Duration = Duration::from_millis(20);

/// A channel to the current leader's client URL, rebuilt when the URL changes.
#[derive(Default)]
pub struct LeaderChannel {
    cached: Mutex<Option<(String, Channel)>>,
}

impl LeaderChannel {
    /// A channel to the leader. Right after an election or a start, the leader (or its
    /// published client URLs) may not be known here yet: waits for them up to
    /// [`LEADER_WAIT`], then fails with `no leader`.
    pub async fn channel(&self, server: &EtcdServer) -> Result<Channel, Status> {
        let until = tokio::time::Instant::now() + LEADER_WAIT;
        let urls = loop {
            if let Some(urls) = server.leader_client_urls() {
                break urls;
            }
            if tokio::time::Instant::now() >= until {
                return Err(ServerError::NoLeader.into());
            }
            tokio::time::sleep(LEADER_POLL).await;
        };
        let url = urls[0].clone();
        let mut cached = self.cached.lock().expect("leader channel lock poisoned");
        if let Some((u, ch)) = cached.as_ref() {
            if *u == url {
                return Ok(ch.clone());
            }
        }
        let ch = Endpoint::from_shared(url.clone())
            .map_err(|e| Status::unavailable(format!("bad leader client URL {url}: {e}")))?
            .connect_lazy();
        *cached = Some((url, ch.clone()));
        Ok(ch)
    }
}
