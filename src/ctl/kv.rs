//! `raftkvctl put`, `get` and `del`: one KV request each, printed the way etcdctl prints it.
//!
//! Output (so etcdctl's documentation still reads right): `put` prints `OK`; `get` prints each
//! key on one line and its value on the next (with `--long`, a third line with its
//! revisions); `del` prints the number of keys deleted. This file formats and sends; it does
//! not choose endpoints (see `client.rs`).

use std::fmt::Write as _;

use tonic::transport::Channel;

use super::error::CtlError;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse};

/// The `range_end` that selects every key starting with `prefix` (etcd's rule: increment the
/// last byte below 0xff and cut after it). An empty prefix selects every key: `key = range_end
/// = "\0"`, so this returns the key to use as well.
pub fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        return (vec![0], vec![0]);
    }
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.to_vec(), end);
        }
    }
    // Every byte was 0xff: no key is greater than all keys with this prefix but "\0" (all).
    (prefix.to_vec(), vec![0])
}

/// `put KEY VALUE`: prints `OK`.
pub async fn put(
    channel: Channel,
    endpoint: &str,
    key: &str,
    value: &str,
) -> Result<String, CtlError> {
    let request = PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        ..Default::default()
    };
    KvClient::new(channel)
        .put(request)
        .await
        .map_err(|status| CtlError::rpc(endpoint, status))?;
    Ok("OK\n".to_string())
}

/// `get KEY [--prefix] [--rev N]`: the matching keys and values.
pub async fn get(
    channel: Channel,
    endpoint: &str,
    key: &str,
    prefix: bool,
    revision: i64,
) -> Result<RangeResponse, CtlError> {
    let (key, range_end) = if prefix {
        prefix_range(key.as_bytes())
    } else {
        (key.as_bytes().to_vec(), Vec::new())
    };
    let request = RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        revision,
        ..Default::default()
    };
    let response = KvClient::new(channel)
        .range(request)
        .await
        .map_err(|status| CtlError::rpc(endpoint, status))?;
    Ok(response.into_inner())
}

/// Formats a range response: key line, value line (and with `long`, a revision line).
pub fn format_range(response: &RangeResponse, long: bool) -> String {
    let mut text = String::new();
    for kv in &response.kvs {
        text.push_str(&String::from_utf8_lossy(&kv.key));
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(&kv.value));
        text.push('\n');
        if long {
            let _ = writeln!(
                text,
                "  create_revision={} mod_revision={} version={} lease={}",
                kv.create_revision, kv.mod_revision, kv.version, kv.lease
            );
        }
    }
    if long {
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        let _ = writeln!(text, "({} keys, revision {revision})", response.count);
    }
    text
}

/// `del KEY [--prefix]`: prints how many keys were deleted.
pub async fn del(
    channel: Channel,
    endpoint: &str,
    key: &str,
    prefix: bool,
) -> Result<String, CtlError> {
    let (key, range_end) = if prefix {
        prefix_range(key.as_bytes())
    } else {
        (key.as_bytes().to_vec(), Vec::new())
    };
    let request = DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    };
    let response = KvClient::new(channel)
        .delete_range(request)
        .await
        .map_err(|status| CtlError::rpc(endpoint, status))?;
    Ok(format!("{}\n", response.into_inner().deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    #[test]
    fn prefix_range_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_range(b"foo"), (b"foo".to_vec(), b"fop".to_vec()));
        assert_eq!(prefix_range(b"a\xff"), (b"a\xff".to_vec(), b"b".to_vec()));
        assert_eq!(prefix_range(b"\xff\xff"), (b"\xff\xff".to_vec(), vec![0]));
        assert_eq!(prefix_range(b""), (vec![0], vec![0]));
    }

    #[test]
    fn range_prints_key_then_value_like_etcdctl() {
        let response = RangeResponse {
            kvs: vec![KeyValue {
                key: "k".into(),
                value: "v".into(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                ..Default::default()
            }],
            count: 1,
            ..Default::default()
        };
        assert_eq!(format_range(&response, false), "k\nv\n");
        let long = format_range(&response, true);
        assert!(long.contains("mod_revision=3 version=2"), "{long}");
    }
}
