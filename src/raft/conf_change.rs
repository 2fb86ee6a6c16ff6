//! The binary encoding of [`ConfChange`], carried as the payload of `EntryKind::ConfChange`
//! log entries.
//!
//! Format (all integers big-endian):
//!
//! ```text
//! byte 0      version (1)
//! byte 1      kind: 1 = AddVoter, 2 = RemoveNode, 3 = AddLearner
//! bytes 2..10 node id (u64)
//! bytes 10..  context (opaque, the rest of the buffer)
//! ```
//!
//! Example: `AddLearner` of node 7 with context `b"x"` encodes as
//! `01 03 00 00 00 00 00 00 00 07 78`.
//!
//! Decoding is the gateway for bytes that came from a disk or a peer, so it validates and
//! returns [`Error::MalformedConfChange`] instead of panicking.

use bytes::{BufMut, Bytes, BytesMut};

use super::{ConfChange, ConfChangeKind, Error, NodeId};

const VERSION: u8 = 1;
const HEADER_BYTES: usize = 10;

impl ConfChange {
    /// Encodes the change for an `EntryKind::ConfChange` entry.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(HEADER_BYTES + self.context.len());
        buf.put_u8(VERSION);
        buf.put_u8(match self.kind {
            ConfChangeKind::AddVoter => 1,
            ConfChangeKind::RemoveNode => 2,
            ConfChangeKind::AddLearner => 3,
        });
        buf.put_u64(self.node.0);
        buf.put_slice(&self.context);
        buf.freeze()
    }

    /// Decodes what [`ConfChange::encode`] produced.
    ///
    /// Errors with [`Error::MalformedConfChange`] on a short buffer, an unknown version or
    /// kind, or node id 0.
    pub fn decode(b: &[u8]) -> Result<ConfChange, Error> {
        let malformed = |why: &str| Error::MalformedConfChange(why.to_string());
        if b.len() < HEADER_BYTES {
            return Err(malformed("shorter than the 10-byte header"));
        }
        if b[0] != VERSION {
            return Err(malformed("unknown version"));
        }
        let kind = match b[1] {
            1 => ConfChangeKind::AddVoter,
            2 => ConfChangeKind::RemoveNode,
            3 => ConfChangeKind::AddLearner,
            _ => return Err(malformed("unknown kind")),
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[2..HEADER_BYTES]);
        let node = NodeId(u64::from_be_bytes(id));
        if node.0 == 0 {
            return Err(malformed("node id 0"));
        }
        let context = Bytes::copy_from_slice(&b[HEADER_BYTES..]);
        Ok(ConfChange {
            kind,
            node,
            context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_change_round_trips() {
        for kind in [
            ConfChangeKind::AddVoter,
            ConfChangeKind::RemoveNode,
            ConfChangeKind::AddLearner,
        ] {
            let cc = ConfChange {
                kind,
                node: NodeId(7),
                context: Bytes::from_static(b"http://x"),
            };
            assert_eq!(ConfChange::decode(&cc.encode()).unwrap(), cc);
        }
    }

    #[test]
    fn conf_change_decode_rejects_garbage() {
        assert!(ConfChange::decode(b"").is_err());
        assert!(ConfChange::decode(&[2, 1, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(ConfChange::decode(&[1, 9, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(ConfChange::decode(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
