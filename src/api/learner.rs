//! What a learner serves: etcd's learners answer only `Maintenance.Status` and serializable
//! `KV.Range`; every other gRPC call (unary or stream, the gRPC health check included) gets
//! `etcdserver: rpc not supported for learner`, so clients move to a voting member.
//!
//! [`refuse_on_learner`] is an axum middleware on the gRPC routes; it lets `KV.Range`
//! through because only the handler can see the `serializable` flag ([`check_range`]).
//! Plain HTTP routes (`/health`, `/metrics`, ...) are not gRPC and are never refused, nor
//! is the HashKV a peer's corruption check sends (marked with [`PEER_CHECK_HEADER`]).
//! Called by `serve.rs` (the layer) and `kv.rs` (the Range check).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tonic::Status;

use crate::proto::etcdserverpb as pb;
use crate::server::{EtcdServer, ServerError};

/// gRPC paths a learner serves (Range subject to [`check_range`]).
const LEARNER_PATHS: [&str; 2] = ["/etcdserverpb.KV/Range", "/etcdserverpb.Maintenance/Status"];

/// Path prefixes of the gRPC services the rule covers.
const GRPC_PREFIXES: [&str; 2] = ["/etcdserverpb.", "/grpc.health.v1."];

/// Marks a HashKV sent by a peer's corruption check (`corrupt_check.rs`): a learner answers
/// it, so that learners are checked too (etcd's peers ask on the peer port, which learners
/// serve).
pub const PEER_CHECK_HEADER: &str = "raftkv-peer-corrupt-check";

const HASH_KV_PATH: &str = "/etcdserverpb.Maintenance/HashKV";

/// Whether a learner refuses a call to `path`; `peer_check`: the call carries
/// [`PEER_CHECK_HEADER`].
fn refused_path(path: &str, peer_check: bool) -> bool {
    if peer_check && path == HASH_KV_PATH {
        return false;
    }
    GRPC_PREFIXES.iter().any(|p| path.starts_with(p)) && !LEARNER_PATHS.contains(&path)
}

/// The middleware: on a learner, answers a refused path with the gRPC error at once.
pub async fn refuse_on_learner(
    State(server): State<EtcdServer>,
    req: Request,
    next: Next,
) -> Response {
    let peer_check = req.headers().contains_key(PEER_CHECK_HEADER);
    if server.is_learner() && refused_path(req.uri().path(), peer_check) {
        let status: Status = ServerError::NotSupportedForLearner.into();
        return status.into_http();
    }
    next.run(req).await
}

/// The Range half of the rule: a learner serves only serializable reads.
pub fn check_range(server: &EtcdServer, req: &pb::RangeRequest) -> Result<(), Status> {
    if server.is_learner() && !req.serializable {
        return Err(ServerError::NotSupportedForLearner.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::refused_path;

    #[test]
    fn learners_serve_status_and_range_only() {
        assert!(!refused_path("/etcdserverpb.Maintenance/Status", false));
        assert!(!refused_path("/etcdserverpb.KV/Range", false));
        assert!(!refused_path("/health", false));
        assert!(!refused_path("/metrics", false));
        assert!(
            !refused_path("/etcdserverpb.Maintenance/HashKV", true),
            "peer check"
        );
        assert!(refused_path("/etcdserverpb.Maintenance/HashKV", false));
        assert!(
            refused_path("/etcdserverpb.KV/Put", true),
            "only HashKV is let through"
        );
        for path in [
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.Watch/Watch",
            "/etcdserverpb.Lease/LeaseKeepAlive",
            "/etcdserverpb.Cluster/MemberList",
            "/etcdserverpb.Cluster/MemberPromote",
            "/etcdserverpb.Maintenance/Snapshot",
            "/grpc.health.v1.Health/Check",
        ] {
            assert!(refused_path(path, false), "{path}");
        }
    }
}
