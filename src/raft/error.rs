//! The errors the Raft core reports to its caller.
//!
//! Only conditions the caller or a peer can cause are errors: a bad configuration, a
//! proposal the node cannot accept right now, a malformed encoded value. Bugs in the core
//! itself are `assert!`s, never values of this type.

use thiserror::Error;

/// Why the Raft core refused a request.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// The configuration given to `RawNode::new` is unusable; the text says which field.
    #[error("invalid raft config: {0}")]
    InvalidConfig(String),
    /// The proposal was not accepted: no leader is known, a leadership transfer is in
    /// progress, or this node is not a member. The caller may retry later.
    #[error("proposal dropped")]
    ProposalDropped,
    /// A membership change is already pending (proposed but not yet applied); only one
    /// single-server change may be in flight at a time.
    #[error("a membership change is already pending")]
    ConfChangePending,
    /// What storage handed back to `RawNode::new` is inconsistent; the text says how.
    #[error("inconsistent recovered state: {0}")]
    InvalidRecoveredState(String),
    /// A message was addressed to another node.
    #[error("message addressed to node {to}, this is node {me}")]
    WrongRecipient {
        /// The message's recipient.
        to: u64,
        /// This node's id.
        me: u64,
    },
    /// An encoded `ConfChange` could not be decoded; the text says why.
    #[error("malformed conf change: {0}")]
    MalformedConfChange(String),
}
