//! Stream-level watch behaviour against the raftkv binary: 10,000 idle watchers on one
//! member, periodic progress notifications (`--watch-progress-notify-interval`), and the
//! `hasleader` metadata ending a stream with `etcdserver: no leader`.

mod support;
mod watch_support;

use std::io::{Read, Write};
use std::time::Duration;

use ::raftkv::proto::etcdserverpb as pb;
use ::raftkv::proto::etcdserverpb::kv_client::KvClient;
use support::{Cluster, ClusterOptions};
use watch_support::{connect, Stream, Want};

fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

fn metrics(client_url: &str) -> String {
    let addr = client_url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn ten_thousand_idle_watchers_on_one_member_all_stay_live() {
    let Some(binary) = support::binary::require_raftkv() else {
        return;
    };
    let cluster = Cluster::start(&binary, &ClusterOptions::default());
    let url = cluster.member(0).client_url.clone();
    run(async {
        let channel = connect(&url).await;
        let mut streams = Vec::new();
        for s in 0..10 {
            let mut stream = Stream::open(channel.clone()).await;
            for i in 0..1000 {
                let key = format!("idle/{s}/{i}").into_bytes();
                stream
                    .create(&Want {
                        key,
                        ..Default::default()
                    })
                    .await;
            }
            streams.push(stream);
        }
        let text = metrics(&url);
        assert!(
            text.contains("etcd_debugging_mvcc_watch_stream_total 10"),
            "{text}"
        );
        let mut kv = KvClient::new(channel);
        let put = pb::PutRequest {
            key: "idle/7/777".into(),
            value: "x".into(),
            ..Default::default()
        };
        kv.put(put).await.unwrap();
        let r = streams[7].next().await;
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].kv.as_ref().unwrap().key.as_ref(), b"idle/7/777");
        assert_eq!(r.watch_id, 777, "ids are assigned per stream from 0");
    });
}

#[test]
fn idle_watchers_that_asked_get_progress_notifications_at_the_interval() {
    let Some(binary) = support::binary::require_raftkv() else {
        return;
    };
    let opts = ClusterOptions {
        extra_args: vec!["--watch-progress-notify-interval=300ms".to_string()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&binary, &opts);
    run(async {
        let channel = connect(&cluster.member(0).client_url).await;
        let mut kv = KvClient::new(channel.clone());
        let put = pb::PutRequest {
            key: "a".into(),
            value: "1".into(),
            ..Default::default()
        };
        let rev = kv
            .put(put)
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        let mut s = Stream::open(channel).await;
        let mut req = Want {
            key: b"a".to_vec(),
            ..Default::default()
        }
        .request(0);
        if let Some(pb::watch_request::RequestUnion::CreateRequest(c)) = &mut req.request_union {
            c.progress_notify = true;
        }
        s.send(req).await;
        let created = s.next().await;
        assert!(created.created);
        for _ in 0..2 {
            let r = s.next().await;
            assert_eq!((r.watch_id, r.events.len()), (created.watch_id, 0), "{r:?}");
            assert_eq!(r.header.unwrap().revision, rev);
        }
    });
}

#[test]
fn hasleader_streams_end_with_no_leader_when_the_member_loses_its_leader() {
    let Some(binary) = support::binary::require_raftkv() else {
        return;
    };
    let opts = ClusterOptions {
        size: 3,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(&binary, &opts);
    cluster.wait_leader(Duration::from_secs(30));
    let url = cluster.member(0).client_url.clone();
    run(async {
        let mut s = Stream::open_with(connect(&url).await, true).await;
        s.create(&Want {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .await;
        cluster.kill(1);
        cluster.kill(2);
        let err = loop {
            match s.next_result().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => break status,
            }
        };
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert_eq!(err.message(), "etcdserver: no leader");
    });
}
