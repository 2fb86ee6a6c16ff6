//! The simulated application: a state machine that folds every applied entry into a
//! running hash, so two nodes agree on their applied history exactly when their hashes
//! agree at the same index.
//!
//! Its snapshot image is that hash plus the applied position (a few bytes), which is what
//! `RawNode::compact` and InstallSnapshot carry. The state is volatile: after a crash the
//! node rebuilds it from its latest snapshot and re-applies the log. It does no Raft logic
//! (conf changes are handed back to `sim::node`, which calls the core). Called by
//! `sim::node`.
//!
//! Worked example:
//! ```text
//! apply 1/1 ""        -> applied 1, chain h1 = mix(0, 1, 1, "")
//! apply 2/1 "x"       -> applied 2, chain h2 = mix(h1, 2, 1, "x"), normal 1
//! image()             -> 32 bytes: index 2, term 1, h2, normal 1
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::raft::{ConfState, Entry, EntryKind, Index, Snapshot, SnapshotMetadata, Term};

/// The hash of an applied history: deterministic, order sensitive, cheap.
pub fn chain_hash(prev: u64, entry: &Entry) -> u64 {
    let mut h = prev ^ 0x9e37_79b9_7f4a_7c15;
    h = mix(h ^ entry.index.0);
    h = mix(h ^ entry.term.0);
    h = mix(h ^ matches!(entry.kind, EntryKind::ConfChange) as u64);
    for chunk in entry.data.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word));
    }
    mix(h ^ entry.data.len() as u64)
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: every input bit affects every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One applied entry as the application saw it (kept only when the cluster records them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEntry {
    /// Where it was applied.
    pub index: Index,
    /// Its term.
    pub term: Term,
    /// Its kind.
    pub kind: EntryKind,
    /// Its payload.
    pub data: Bytes,
}

/// The replicated state machine of one node.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// The last applied index.
    pub applied: Index,
    /// The term of the entry at `applied`.
    pub applied_term: Term,
    /// The hash of the applied history up to `applied`.
    pub chain: u64,
    /// How many non-empty normal entries were applied (client proposals).
    pub normal_count: u64,
    /// Membership as of `applied`.
    pub conf_state: ConfState,
    /// The applied entries, oldest first, when recording is on (golden scripts).
    pub history: Option<Vec<AppliedEntry>>,
}

impl App {
    /// A fresh state machine for a node whose membership starts as `conf_state`.
    pub fn new(conf_state: ConfState, record: bool) -> App {
        App {
            conf_state,
            history: record.then(Vec::new),
            ..App::default()
        }
    }

    /// Applies the next entry. Entries arrive in log order without gaps.
    pub fn apply(&mut self, entry: &Entry) {
        assert_eq!(
            entry.index,
            self.applied.next(),
            "applied entries must be contiguous: applied {} then got {}",
            self.applied,
            entry.index
        );
        self.chain = chain_hash(self.chain, entry);
        self.applied = entry.index;
        self.applied_term = entry.term;
        if entry.kind == EntryKind::Normal && !entry.data.is_empty() {
            self.normal_count += 1;
        }
        if let Some(history) = &mut self.history {
            history.push(AppliedEntry {
                index: entry.index,
                term: entry.term,
                kind: entry.kind,
                data: entry.data.clone(),
            });
        }
    }

    /// The snapshot of the current state, to hand to `RawNode::compact`.
    pub fn snapshot(&self) -> Snapshot {
        let mut data = BytesMut::with_capacity(32);
        data.put_u64(self.applied.0);
        data.put_u64(self.applied_term.0);
        data.put_u64(self.chain);
        data.put_u64(self.normal_count);
        Snapshot {
            metadata: SnapshotMetadata {
                index: self.applied,
                term: self.applied_term,
                conf_state: self.conf_state.clone(),
            },
            data: data.freeze(),
        }
    }

    /// Replaces the state with a snapshot's image. The image's own header must match the
    /// metadata: a mismatch means the core shipped a snapshot for a different position.
    pub fn restore(&mut self, snap: &Snapshot) {
        let mut data = snap.data.clone();
        assert_eq!(
            data.len(),
            32,
            "snapshot image must be 32 bytes, got {}",
            data.len()
        );
        let index = Index(data.get_u64());
        let term = Term(data.get_u64());
        assert!(
            index == snap.metadata.index && term == snap.metadata.term,
            "snapshot image is at {}/{} but its metadata says {}/{}",
            index,
            term,
            snap.metadata.index,
            snap.metadata.term
        );
        self.applied = index;
        self.applied_term = term;
        self.chain = data.get_u64();
        self.normal_count = data.get_u64();
        self.conf_state = snap.metadata.conf_state.clone();
        if let Some(history) = &mut self.history {
            history.clear();
        }
    }
}
