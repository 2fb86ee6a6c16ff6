//! Checks the gRPC surface generated from `proto/`: every service and method name (the
//! path a client calls, e.g. `/etcdserverpb.KV/Range`) and which sides stream, against
//! etcd 3.5's list plus raftkv's own `RaftPeer`; and the `grpc.health.v1` messages that
//! come from `tonic-health`.
//!
//! The names are read from `raftkv::proto::FILE_DESCRIPTOR_SET`, the descriptor the code
//! was generated from, so a renamed RPC or a lost `stream` keyword fails here.

use prost::Message;

#[test]
fn health_check_request_from_tonic_health() {
    use raftkv::proto::health::pb::HealthCheckRequest;
    let check = HealthCheckRequest {
        service: "etcdserverpb.KV".to_string(),
    };
    let mut expected = vec![0x0a, 15];
    expected.extend_from_slice(b"etcdserverpb.KV");
    assert_eq!(check.encode_to_vec(), expected);
}

/// Every gRPC method as "package.Service/Method", with `stream` marking streaming sides.
#[rustfmt::skip]
const EXPECTED_METHODS: &[&str] = &[
    "etcdserverpb.KV/Range", "etcdserverpb.KV/Put", "etcdserverpb.KV/DeleteRange",
    "etcdserverpb.KV/Txn", "etcdserverpb.KV/Compact",
    "etcdserverpb.Watch/Watch stream->stream",
    "etcdserverpb.Lease/LeaseGrant", "etcdserverpb.Lease/LeaseRevoke",
    "etcdserverpb.Lease/LeaseKeepAlive stream->stream", "etcdserverpb.Lease/LeaseTimeToLive",
    "etcdserverpb.Lease/LeaseLeases",
    "etcdserverpb.Cluster/MemberAdd", "etcdserverpb.Cluster/MemberRemove",
    "etcdserverpb.Cluster/MemberUpdate", "etcdserverpb.Cluster/MemberList",
    "etcdserverpb.Cluster/MemberPromote",
    "etcdserverpb.Maintenance/Alarm", "etcdserverpb.Maintenance/Status",
    "etcdserverpb.Maintenance/Defragment", "etcdserverpb.Maintenance/Hash",
    "etcdserverpb.Maintenance/HashKV", "etcdserverpb.Maintenance/Snapshot unary->stream",
    "etcdserverpb.Maintenance/MoveLeader", "etcdserverpb.Maintenance/Downgrade",
    "etcdserverpb.Auth/AuthEnable", "etcdserverpb.Auth/AuthDisable", "etcdserverpb.Auth/AuthStatus",
    "etcdserverpb.Auth/Authenticate", "etcdserverpb.Auth/UserAdd", "etcdserverpb.Auth/UserGet",
    "etcdserverpb.Auth/UserList", "etcdserverpb.Auth/UserDelete",
    "etcdserverpb.Auth/UserChangePassword", "etcdserverpb.Auth/UserGrantRole",
    "etcdserverpb.Auth/UserRevokeRole", "etcdserverpb.Auth/RoleAdd", "etcdserverpb.Auth/RoleGet",
    "etcdserverpb.Auth/RoleList", "etcdserverpb.Auth/RoleDelete",
    "etcdserverpb.Auth/RoleGrantPermission", "etcdserverpb.Auth/RoleRevokePermission",
    "raftkvpb.RaftPeer/Send stream->unary", "raftkvpb.RaftPeer/InstallSnapshot stream->unary",
    "raftkvpb.RaftPeer/Members",
];

fn describe(package: &str, service: &str, method: &prost_types::MethodDescriptorProto) -> String {
    let name = format!("{package}.{service}/{}", method.name());
    match (method.client_streaming(), method.server_streaming()) {
        (false, false) => name,
        (client, server) => {
            let side = |streaming| if streaming { "stream" } else { "unary" };
            format!("{name} {}->{}", side(client), side(server))
        }
    }
}

#[test]
fn service_and_method_names_match_etcd() {
    let set = prost_types::FileDescriptorSet::decode(raftkv::proto::FILE_DESCRIPTOR_SET)
        .expect("build.rs writes a valid descriptor set");
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                methods.push(describe(file.package(), service.name(), method));
            }
        }
    }
    let mut expected: Vec<String> = EXPECTED_METHODS.iter().map(|m| m.to_string()).collect();
    methods.sort();
    expected.sort();
    assert_eq!(methods, expected);
}
