//! Turning the watch hub's batches into `WatchResponse`s: event conversion, the compaction
//! cancel, progress replies, and etcd's fragmenting of responses above the request limit.
//!
//! Pure functions; called only by the watch stream task (`watch.rs`).

use prost::Message as _;

use crate::mvcc::{self, WatchBatch};
use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;

/// One mvcc event as `mvccpb.Event`.
pub fn event(e: mvcc::Event) -> mvccpb::Event {
    let kind = match e.kind {
        mvcc::EventType::Put => mvccpb::event::EventType::Put,
        mvcc::EventType::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(key_value(e.kv)),
        prev_kv: e.prev_kv.map(key_value),
    }
}

fn key_value(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.into(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.into(),
        lease: kv.lease,
    }
}

/// The response for a hub batch: events, a progress notification (no events), or the
/// compaction cancel (`compact_revision` + `canceled`, as etcd's send loop sets them).
pub fn batch_response(batch: WatchBatch, header: pb::ResponseHeader) -> pb::WatchResponse {
    pb::WatchResponse {
        header: Some(header),
        watch_id: batch.tag.unwrap_or(-1),
        canceled: batch.compact_revision != 0,
        compact_revision: batch.compact_revision,
        events: batch.events.into_iter().map(event).collect(),
        ..Default::default()
    }
}

/// `resp` split as etcd splits it for a `fragment` watcher: whole if it is under
/// `bytes_max` or holds fewer than two events; else in parts of at least one event each,
/// every part but the last marked `fragment`.
pub fn fragments(resp: pb::WatchResponse, bytes_max: usize) -> Vec<pb::WatchResponse> {
    if resp.encoded_len() < bytes_max || resp.events.len() < 2 {
        return vec![resp];
    }
    let template = pb::WatchResponse {
        events: Vec::new(),
        ..resp.clone()
    };
    let base = template.encoded_len();
    let mut parts = Vec::new();
    let mut current = template.clone();
    let mut size = base;
    for ev in resp.events {
        let ev_size = ev.encoded_len() + 4;
        if !current.events.is_empty() && size + ev_size > bytes_max {
            let mut full = std::mem::replace(&mut current, template.clone());
            full.fragment = true;
            parts.push(full);
            size = base;
        }
        size += ev_size;
        current.events.push(ev);
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(i: usize, value_bytes: usize) -> mvccpb::Event {
        event(mvcc::Event {
            kind: mvcc::EventType::Put,
            kv: mvcc::KeyValue {
                key: format!("k{i}").into_bytes(),
                mod_revision: 7,
                value: vec![b'x'; value_bytes],
                ..Default::default()
            },
            prev_kv: None,
        })
    }

    #[test]
    fn large_responses_split_into_fragments_that_keep_every_event_in_order() {
        let resp = pb::WatchResponse {
            watch_id: 3,
            events: (0..10).map(|i| put(i, 1000)).collect(),
            ..Default::default()
        };
        let parts = fragments(resp.clone(), 2500);
        assert!(
            parts.len() > 1,
            "10 KB of events under a 2.5 KB limit must split"
        );
        let (last, init) = parts.split_last().unwrap();
        assert!(init.iter().all(|p| p.fragment) && !last.fragment);
        assert!(parts
            .iter()
            .all(|p| p.watch_id == 3 && !p.events.is_empty()));
        let joined: Vec<_> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, resp.events);
        assert_eq!(fragments(resp.clone(), 1 << 20), vec![resp]);
    }
}
