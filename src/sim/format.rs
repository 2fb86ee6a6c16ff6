//! Compact, stable text for messages, entries and node state, used by traces and by the
//! golden scripts' expected output. Pure functions; called by `sim::cluster` and
//! `sim::script`.
//!
//! Example: `1->2 Append term=2 log=2/5 commit=5 entries=[6/2 "x"]`.

use std::fmt::Write;

use crate::raft::{ConfChange, ConfState, Entry, EntryKind, Message, MessageKind};

/// One entry as `index/term payload`: `noop` for empty normal entries, the quoted payload
/// (cut at 24 bytes) otherwise, and the decoded change for conf-change entries.
pub fn entry(e: &Entry) -> String {
    format!("{}/{} {}", e.index, e.term, payload(e))
}

fn payload(e: &Entry) -> String {
    match e.kind {
        EntryKind::Normal if e.data.is_empty() => "noop".to_string(),
        EntryKind::Normal => quoted(&e.data),
        EntryKind::ConfChange => match ConfChange::decode(&e.data) {
            Ok(cc) => format!("{:?}({})", cc.kind, cc.node),
            Err(err) => format!("<bad conf change: {err}>"),
        },
    }
}

/// Bytes as a quoted string, cut at 24 bytes.
pub fn quoted(data: &[u8]) -> String {
    let cut = &data[..data.len().min(24)];
    let more = if data.len() > 24 { "..." } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(cut))
}

/// A list of entries: `[1/1 noop, 2/1 "x"]`.
pub fn entries(es: &[Entry]) -> String {
    let parts: Vec<String> = es.iter().map(entry).collect();
    format!("[{}]", parts.join(", "))
}

/// Membership as `voters=(1,2,3) learners=(4)`; learners omitted when none.
pub fn conf_state(cs: &ConfState) -> String {
    let ids = |set: &std::collections::BTreeSet<crate::raft::NodeId>| {
        set.iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = format!("voters=({})", ids(&cs.voters));
    if !cs.learners.is_empty() {
        let _ = write!(out, " learners=({})", ids(&cs.learners));
    }
    out
}

/// A message, showing only the fields that are set.
pub fn message(m: &Message) -> String {
    let mut out = format!("{}->{} {:?} term={}", m.from, m.to, m.kind, m.term);
    let shows_log = matches!(
        m.kind,
        MessageKind::Append | MessageKind::RequestVote | MessageKind::RequestPreVote
    );
    if shows_log {
        let _ = write!(out, " log={}/{}", m.log_term, m.index);
    } else if m.index.0 > 0 || m.log_term.0 > 0 {
        let _ = write!(out, " index={}", m.index);
        if m.log_term.0 > 0 {
            let _ = write!(out, " log_term={}", m.log_term);
        }
    }
    if m.commit.0 > 0 {
        let _ = write!(out, " commit={}", m.commit);
    }
    if m.reject {
        let _ = write!(out, " rejected hint={}", m.reject_hint);
    }
    if !m.entries.is_empty() || m.kind == MessageKind::Append {
        let _ = write!(out, " entries={}", entries(&m.entries));
    }
    if let Some(s) = &m.snapshot {
        let _ = write!(
            out,
            " snapshot={}/{} {}",
            s.metadata.index,
            s.metadata.term,
            conf_state(&s.metadata.conf_state)
        );
    }
    if !m.context.is_empty() {
        let _ = write!(out, " context={}", quoted(&m.context));
    }
    out
}
