//! etcd's watch guarantees, each checked over seeded random traffic (`SEED=n` replays)
//! against a real server process, raftkv and etcd 3.4 alike (`<test>_etcd`,
//! `<test>_raftkv`): ordered, unique, reliable (no gaps), atomic (a revision is never split),
//! resumable, bookmarkable, prev_kv and filters, the compaction cancel, and a slow client.
//! The truth is the writer's own model of the events it caused (`watch_support`).

mod support;
mod watch_support;

use ::raftkv::proto::etcdserverpb as pb;
use ::raftkv::proto::etcdserverpb::kv_client::KvClient;
use ::raftkv::proto::etcdserverpb::watch_request::RequestUnion;
use support::{Cluster, ClusterOptions, ServerBinary};
use watch_support::{connect, seed, Ev, Stream, Want, Writer};

fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

fn url(c: &Cluster, i: usize) -> String {
    c.member(i).client_url.clone()
}

fn wants(start: i64, future: i64) -> Vec<Want> {
    let all = |start_revision| Want {
        key: b"k".to_vec(),
        range_end: vec![0],
        start_revision,
        ..Default::default()
    };
    vec![
        Want {
            prev_kv: true,
            ..all(start)
        },
        Want {
            key: b"k2".to_vec(),
            range_end: b"k5".to_vec(),
            ..all(future)
        },
        Want {
            key: b"k3".to_vec(),
            range_end: Vec::new(),
            prev_kv: true,
            ..all(start)
        },
        Want {
            no_put: true,
            prev_kv: true,
            ..all(future)
        },
        Want {
            no_delete: true,
            ..all(start)
        },
        Want {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            ..all(future)
        },
    ]
}

/// Ordered, unique, reliable, atomic, prev_kv and filters: every watcher (historical and
/// live, single key, range, prefix, NOPUT, NODELETE) gets exactly the model's events.
fn ordered_unique_reliable_atomic_prev_kv_filters(binary: &ServerBinary) {
    let cluster = Cluster::start(binary, &ClusterOptions::default());
    let seed = seed();
    run(async {
        let channel = connect(&url(&cluster, 0)).await;
        let mut w = Writer::new(channel.clone(), seed).await;
        for _ in 0..40 {
            w.step(16).await;
        }
        let start = w.revision - 20;
        let mut s = Stream::open(channel).await;
        let mut ids = Vec::new();
        let list = wants(start, w.revision + 1);
        for want in &list {
            ids.push(s.create(want).await);
        }
        for _ in 0..150 {
            w.step(16).await;
        }
        s.expect_events(&ids, &list, &w.events, seed).await;
    });
}

/// Bookmarkable: a progress reply (watch_id -1) at revision R comes only after every event
/// <= R of every watcher on the stream.
fn bookmarkable(binary: &ServerBinary) {
    let cluster = Cluster::start(binary, &ClusterOptions::default());
    let seed = seed();
    run(async {
        let channel = connect(&url(&cluster, 0)).await;
        let mut w = Writer::new(channel.clone(), seed).await;
        let mut s = Stream::open(channel).await;
        let list = wants(w.revision + 1, w.revision + 1);
        let mut ids = Vec::new();
        for want in &list {
            ids.push(s.create(want).await);
        }
        for round in 0..5 {
            for _ in 0..30 {
                w.step(16).await;
            }
            let progress = RequestUnion::ProgressRequest(pb::WatchProgressRequest {});
            s.send(pb::WatchRequest {
                request_union: Some(progress),
            })
            .await;
            let r = loop {
                let r = s.next().await;
                if r.watch_id == -1 {
                    break r;
                }
            };
            assert!(r.events.is_empty() && !r.created && !r.canceled, "{r:?}");
            let at = r.header.unwrap().revision;
            assert!(
                at >= w.revision,
                "seed {seed} round {round}: progress at {at} < {}",
                w.revision
            );
            let got = s.events();
            for (id, want) in ids.iter().zip(&list) {
                let due: Vec<Ev> = want
                    .expected(&w.events)
                    .into_iter()
                    .filter(|e| e.revision <= at)
                    .collect();
                assert_eq!(
                    got.get(id).cloned().unwrap_or_default(),
                    due,
                    "seed {seed}: {want:?}"
                );
            }
        }
    });
}

/// Resumable: cancel a watcher midway and watch again from last+1: the two together are
/// exactly the model's events.
fn resumable(binary: &ServerBinary) {
    let cluster = Cluster::start(binary, &ClusterOptions::default());
    let seed = seed();
    run(async {
        let channel = connect(&url(&cluster, 0)).await;
        let mut w = Writer::new(channel.clone(), seed).await;
        let first = w.revision + 1;
        for _ in 0..120 {
            w.step(16).await;
        }
        let want = Want {
            key: b"k".to_vec(),
            range_end: vec![0],
            start_revision: first,
            prev_kv: true,
            ..Default::default()
        };
        let expected = want.expected(&w.events);
        let mut s = Stream::open(channel.clone()).await;
        let id = s.create(&want).await;
        s.read_until(|g| g.get(&id).map_or(0, Vec::len) >= expected.len() / 2)
            .await;
        let part = s.events().remove(&id).unwrap();
        let last = part.last().unwrap().revision;
        drop(s);
        let mut again = Stream::open(channel).await;
        let rest = Want {
            start_revision: last + 1,
            ..want.clone()
        };
        let id = again.create(&rest).await;
        let todo = expected.len() - part.len();
        again
            .read_until(|g| g.get(&id).map_or(0, Vec::len) >= todo)
            .await;
        let mut joined = part;
        joined.extend(again.events().remove(&id).unwrap());
        assert_eq!(joined, expected, "seed {seed}");
    });
}

/// A start revision below the compacted one: `created`, then one reply with
/// `compact_revision` and `canceled`.
fn compacted_start_revision_cancels_with_the_compact_revision(binary: &ServerBinary) {
    let cluster = Cluster::start(binary, &ClusterOptions::default());
    let seed = seed();
    run(async {
        let channel = connect(&url(&cluster, 0)).await;
        let mut w = Writer::new(channel.clone(), seed).await;
        for _ in 0..30 {
            w.step(16).await;
        }
        let at = w.revision - 5;
        let mut kv = KvClient::new(channel.clone());
        kv.compact(pb::CompactionRequest {
            revision: at,
            physical: true,
        })
        .await
        .unwrap();
        let mut s = Stream::open(channel).await;
        let want = Want {
            key: b"k".to_vec(),
            range_end: vec![0],
            start_revision: at - 3,
            ..Default::default()
        };
        s.send(want.request(0)).await;
        let created = s.next().await;
        assert!(created.created && !created.canceled, "{created:?}");
        let r = s.next().await;
        assert_eq!(
            (r.watch_id, r.compact_revision, r.canceled),
            (created.watch_id, at, true),
            "{r:?}"
        );
        assert!(r.events.is_empty());
        // The compaction point itself is still watchable, except a delete made at exactly
        // that revision: compaction drops a tombstone at or below its revision, so neither
        // etcd nor raftkv can replay it (waiting for it was this test's old hang).
        let ok = Want {
            start_revision: at,
            ..want
        };
        let id = s.create(&ok).await;
        let mut expected = ok.expected(&w.events);
        expected.retain(|e| e.put || e.revision != at);
        s.read_until(|g| g.get(&id).map_or(0, Vec::len) >= expected.len())
            .await;
        assert_eq!(
            s.events().remove(&id).unwrap_or_default(),
            expected,
            "seed {seed}"
        );
    });
}

/// A client that stops reading while large events pile up (its watcher is parked as a
/// victim in raftkv) still gets every event, in order, once it reads again; writes never
/// wait for it.
fn slow_client_gets_every_event(binary: &ServerBinary) {
    let cluster = Cluster::start(binary, &ClusterOptions::default());
    let seed = seed();
    run(async {
        let channel = connect(&url(&cluster, 0)).await;
        let mut w = Writer::new(channel.clone(), seed).await;
        // Its own connection, so the unread stream's flow control stalls only the watch.
        let mut s = Stream::open(connect(&url(&cluster, 0)).await).await;
        let want = Want {
            key: b"k".to_vec(),
            range_end: vec![0],
            start_revision: w.revision + 1,
            ..Default::default()
        };
        let id = s.create(&want).await;
        for _ in 0..400 {
            w.step(16 << 10).await;
        }
        let expected = want.expected(&w.events);
        s.read_until(|g| g.get(&id).map_or(0, Vec::len) >= expected.len())
            .await;
        assert_eq!(s.events().remove(&id).unwrap(), expected, "seed {seed}");
        s.assert_atomic(seed);
    });
}

/// raftkv only: etcd 3.4 answers a progress request at once, even before queued events
/// went out (the 3.5 fix, RequestProgressAll, answers only when every watcher is synced,
/// which is what raftkv implements); against 3.4 this check fails by design.
#[test]
fn bookmarkable_raftkv() {
    if let Some(binary) = support::binary::require_raftkv() {
        bookmarkable(&binary);
    }
}

server_tests!(
    ordered_unique_reliable_atomic_prev_kv_filters,
    resumable,
    slow_client_gets_every_event,
    compacted_start_revision_cancels_with_the_compact_revision,
);
