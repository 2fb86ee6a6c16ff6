//! The `raftkv` binary as etcd's own tools see it: a single member started with etcd's
//! flags on free loopback ports, driven with the real `etcdctl` 3.4 (ETCDCTL_API=3) and a
//! plain HTTP/1.1 client. Outputs are compared with what etcdctl prints against a real
//! etcd for the same commands (checked by hand with etcd 3.4.23 when these were written).

mod api_support;

use api_support::{http_get, http_request, Member};
use raftkv::proto::health::pb::health_check_response::ServingStatus;
use raftkv::proto::health::pb::health_client::HealthClient;
use raftkv::proto::health::pb::HealthCheckRequest;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn etcdctl_put_get_del_txn_compact_and_their_errors() {
    let mut m = Member::start("kv", &["--max-request-bytes=1024"]);
    m.wait_healthy();

    eprintln!("phase 1: put, get, del");
    assert_eq!(m.ctl_ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(m.ctl_ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(m.ctl_ok(&["del", "foo"]), "1\n");
    assert_eq!(m.ctl_ok(&["del", "foo"]), "0\n");
    assert_eq!(m.ctl_ok(&["get", "foo"]), "");

    eprintln!("phase 2: txn takes the success branch once, then the failure branch");
    let script = "mod(\"k\") = \"0\"\n\nput k v1\n\nput k v2\n\n";
    let first = m.etcdctl(&["txn"], script);
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "SUCCESS\n\nOK\n",
        "{}",
        stderr(&first)
    );
    let second = m.etcdctl(&["txn"], script);
    assert_eq!(String::from_utf8_lossy(&second.stdout), "FAILURE\n\nOK\n");
    assert_eq!(m.ctl_ok(&["get", "k"]), "k\nv2\n");

    eprintln!("phase 3: errors reach etcdctl with etcd's messages");
    let future = m.etcdctl(&["get", "k", "--rev=100"], "");
    assert!(!future.status.success());
    assert!(
        stderr(&future).contains("Error: etcdserver: mvcc: required revision is a future revision"),
        "{}",
        stderr(&future)
    );
    let big = "x".repeat(2000);
    let too_large = m.etcdctl(&["put", "big", &big], "");
    assert!(!too_large.status.success());
    assert!(
        stderr(&too_large).contains("Error: etcdserver: request is too large"),
        "{}",
        stderr(&too_large)
    );

    eprintln!("phase 4: compaction, then reading below it is refused");
    // Revisions: put foo = 2, del foo = 3, txn = 4, txn = 5.
    assert_eq!(m.ctl_ok(&["compact", "4"]), "compacted revision 4\n");
    let compacted = m.etcdctl(&["get", "k", "--rev=3"], "");
    assert!(
        stderr(&compacted)
            .contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{}",
        stderr(&compacted)
    );
    assert_eq!(m.ctl_ok(&["get", "k", "--rev=4"]), "k\nv1\n");
}

#[test]
fn endpoint_status_member_list_and_unimplemented_services() {
    let mut m = Member::start("st", &["--experimental-compact-hash-check-enabled=true"]);
    m.wait_healthy();
    assert!(
        m.log()
            .contains("--experimental-compact-hash-check-enabled=true is not implemented"),
        "the ignored flag is named in a warning:\n{}",
        m.log()
    );

    eprintln!("phase 1: endpoint status");
    let status: serde_json::Value =
        serde_json::from_str(&m.ctl_ok(&["endpoint", "status", "-w", "json"])).unwrap();
    let status = &status[0]["Status"];
    assert_eq!(status["version"], "3.5.17");
    let member_id = status["header"]["member_id"].as_u64().unwrap();
    assert_eq!(
        status["leader"].as_u64(),
        Some(member_id),
        "a single member leads"
    );
    assert!(status["raftIndex"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["raftTerm"].as_u64().unwrap() >= 1, "{status}");

    // With a scheme, etcdctl's status dial sends `:authority: http://...` (src/api/authority.rs).
    let url = format!("http://127.0.0.1:{}", m.client_port);
    let out = api_support::etcdctl(&url, &["endpoint", "status", "-w", "json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again[0]["Status"]["leader"].as_u64(), Some(member_id));

    eprintln!("phase 2: member list");
    let list: serde_json::Value =
        serde_json::from_str(&m.ctl_ok(&["member", "list", "-w", "json"])).unwrap();
    let members = list["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{list}");
    assert_eq!(members[0]["ID"].as_u64(), Some(member_id));
    assert_eq!(members[0]["name"], "st");
    let peer = format!("http://127.0.0.1:{}", m.peer_port);
    let client = format!("http://127.0.0.1:{}", m.client_port);
    assert_eq!(members[0]["peerURLs"], serde_json::json!([peer]));
    assert_eq!(members[0]["clientURLs"], serde_json::json!([client]));
    let table = m.ctl_ok(&["member", "list"]);
    assert_eq!(
        table,
        format!("{member_id:x}, started, st, {peer}, {client}, false\n")
    );

    eprintln!("phase 3: endpoint health (a linearizable read through etcdctl)");
    let health = m.etcdctl(&["endpoint", "health"], "");
    assert!(health.status.success(), "{}", stderr(&health));
    // etcdctl 3.4 prints the verdict on stderr.
    assert!(stderr(&health).contains("is healthy: successfully committed proposal"));

    eprintln!("phase 4: services not built yet answer Unimplemented, never a retry");
    let users = m.etcdctl(&["user", "list"], "");
    assert!(!users.status.success());
    assert!(
        stderr(&users).contains("code = Unimplemented"),
        "{}",
        stderr(&users)
    );
}

#[test]
fn http_routes_on_the_client_and_metrics_listeners() {
    let mut m = Member::start("http", &[]);
    m.wait_healthy();
    for port in [m.client_port, m.metrics_port] {
        eprintln!("port {port}");
        let health = http_get(port, "/health").unwrap();
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, r#"{"health":"true","reason":""}"#)
        );
        assert_eq!(
            health.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let probe = http_get(port, "/health?exclude=NOSPACE&serializable=true").unwrap();
        assert_eq!(probe.status, 200, "{probe:?}");
        for path in ["/livez", "/readyz"] {
            let r = http_get(port, path).unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{path}");
        }
        let version = http_get(port, "/version").unwrap();
        assert_eq!(
            version.body,
            r#"{"etcdserver":"3.5.17","etcdcluster":"3.5.0"}"#
        );
        assert_eq!(version.header("content-type"), Some("application/json"));
        let metrics = http_get(port, "/metrics").unwrap();
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.body.contains("\netcd_server_has_leader 1\n"),
            "{}",
            metrics.body
        );
        let missing = http_get(port, "/no-such-page").unwrap();
        assert_eq!(
            (missing.status, missing.body.as_str()),
            (404, "404 page not found\n")
        );
        assert_eq!(http_request(port, "POST", "/health").unwrap().status, 405);
    }
    let port = m.client_port;
    api_support::wait_for("gRPC health SERVING", || {
        (grpc_health(port) == ServingStatus::Serving).then_some(())
    });
}

#[test]
fn a_member_without_leader_is_live_but_not_healthy_nor_ready() {
    // Two members configured, only one started: no quorum, so never a leader.
    let absent = api_support::free_port();
    let mut m = Member::prepare("lonely");
    let cluster = format!(
        "--initial-cluster=lonely=http://127.0.0.1:{},absent=http://127.0.0.1:{absent}",
        m.peer_port
    );
    m.spawn(&[&cluster]);
    let port = m.client_port;
    api_support::wait_for("/livez to answer", || http_get(port, "/livez").ok());
    let health = http_get(port, "/health").unwrap();
    assert_eq!(health.status, 503);
    assert_eq!(
        health.body,
        r#"{"health":"false","reason":"RAFT NO LEADER"}"#
    );
    let serializable = http_get(port, "/health?serializable=true").unwrap();
    assert_eq!(
        serializable.status, 503,
        "serializable still needs a leader"
    );
    let ready = http_get(port, "/readyz").unwrap();
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("[-]"), "{}", ready.body);
    assert_eq!(http_get(port, "/livez").unwrap().status, 200);
    let metrics = http_get(m.metrics_port, "/metrics").unwrap();
    assert!(
        metrics.body.contains("\netcd_server_has_leader 0\n"),
        "{}",
        metrics.body
    );
    api_support::wait_for("gRPC health NOT_SERVING", || {
        (grpc_health(port) == ServingStatus::NotServing).then_some(())
    });
}

/// `grpc.health.v1.Health/Check` for the empty service name, over h2c on the client port.
fn grpc_health(port: u16) -> ServingStatus {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("http://127.0.0.1:{port}");
        let channel = tonic::transport::Channel::from_shared(url)
            .unwrap()
            .connect()
            .await;
        let mut client = HealthClient::new(channel.unwrap());
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let reply = client.check(request).await.unwrap().into_inner();
        ServingStatus::try_from(reply.status).unwrap()
    })
}

#[test]
fn every_listen_client_url_serves_grpc_and_http() {
    let mut m = Member::prepare("two-ports");
    let second = api_support::free_port();
    let urls = format!(
        "--listen-client-urls=http://127.0.0.1:{},http://127.0.0.1:{second}",
        m.client_port
    );
    m.spawn(&[&urls]);
    m.wait_healthy();
    assert_eq!(http_get(second, "/health").unwrap().status, 200);
    assert_eq!(m.ctl_ok(&["put", "via", "first"]), "OK\n");
    let out = api_support::etcdctl(&format!("127.0.0.1:{second}"), &["get", "via"], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "via\nfirst\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_taken_client_port_fails_the_start_with_a_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut m = Member::prepare("taken");
    m.spawn(&[&format!("--listen-client-urls=http://127.0.0.1:{port}")]);
    let status = m.wait_exit();
    assert!(!status.success());
    assert!(
        m.log().contains(&format!("listen on 127.0.0.1:{port}")),
        "{}",
        m.log()
    );
    assert!(
        !m.dir.join("data").exists(),
        "the data dir is untouched when a port is taken"
    );
}

#[test]
fn sigterm_stops_gracefully_and_the_data_survives_a_restart() {
    let mut m = Member::start("restart", &[]);
    m.wait_healthy();
    assert_eq!(m.ctl_ok(&["put", "durable", "yes"]), "OK\n");

    let status = m.terminate();
    assert!(status.success(), "exit status {status}\n{}", m.log());
    assert!(m.log().contains("received stop signal"), "{}", m.log());

    m.spawn(&[]);
    m.wait_healthy();
    assert_eq!(m.ctl_ok(&["get", "durable"]), "durable\nyes\n");
}

/// Not a check: prints requests per second through the client listener (one h2c
/// connection, 16 concurrent callers) for serializable ranges and puts, to compare builds.
/// Run with `cargo test --release --test api_binary -- --ignored --nocapture`.
#[test]
#[ignore]
fn client_listener_throughput_report() {
    use raftkv::proto::etcdserverpb::kv_client::KvClient;
    use raftkv::proto::etcdserverpb::{PutRequest, RangeRequest};

    let mut m = Member::start("bench", &[]);
    m.wait_healthy();
    let url = format!("http://127.0.0.1:{}", m.client_port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(url)
            .unwrap()
            .connect()
            .await;
        let client = KvClient::new(channel.unwrap());
        for kind in ["range", "put"] {
            let started = std::time::Instant::now();
            let mut tasks = Vec::new();
            for t in 0..16 {
                let mut c = client.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..250 {
                        let key = format!("k{t}-{i}").into_bytes();
                        if kind == "range" {
                            let req = RangeRequest {
                                key: key.into(),
                                serializable: true,
                                ..Default::default()
                            };
                            c.range(req).await.unwrap();
                        } else {
                            let req = PutRequest {
                                key: key.into(),
                                value: vec![b'v'; 256].into(),
                                ..Default::default()
                            };
                            c.put(req).await.unwrap();
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let rate = 4000.0 / started.elapsed().as_secs_f64();
            eprintln!("{kind}: {rate:.0} requests/s");
        }
    });
}

/// etcd lets clients ping every 5 s (`--grpc-keepalive-min-time`); raftkv must never answer
/// pings with GOAWAY(ENHANCE_YOUR_CALM). Twenty back-to-back pings (far more eager than any
/// client), then an h2c request on the same connection still gets its answer.
#[test]
fn eager_http2_pings_do_not_cost_the_connection() {
    let mut m = Member::start("pings", &[]);
    m.wait_healthy();
    let port = m.client_port;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
        let mut pings = connection.ping_pong().expect("ping_pong is available once");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        for _ in 0..20 {
            pings.ping(h2::Ping::opaque()).await.expect("pong");
        }
        let mut send = send.ready().await.unwrap();
        let request = axum::http::Request::get(format!("http://127.0.0.1:{port}/version"))
            .body(())
            .unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        let response = response.await.expect("the connection survived the pings");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        assert_eq!(bytes, br#"{"etcdserver":"3.5.17","etcdcluster":"3.5.0"}"#);
    });
}
