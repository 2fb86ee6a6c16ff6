//! The Watch service, registered so that clients get a clear Unimplemented (never
//! retried) instead of a routing error, until watch exists (issue 5).
//!
//! Delete this file when `src/api/watch.rs` arrives.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::error::unimplemented;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::watch_server::Watch;

type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Watch: every stream fails at once with Unimplemented.
pub struct WatchService;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Replies<pb::WatchResponse>;

    async fn watch(
        &self,
        _req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(unimplemented("Watch"))
    }
}
