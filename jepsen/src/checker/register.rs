//! The `register` workload's checker: pairs invokes with completions, splits the history by
//! key, and runs the linearizability search (`linearizable`), the window finder (`window`)
//! and the named-anomaly rules (`lost`) on each key.
//!
//! How records become operations (Jepsen's semantics):
//! - `ok`: the operation took effect between its invoke and its completion; a read's value
//!   is the completion's `value` (`null` = the key is missing), a write's and a cas's come
//!   from the invoke.
//! - `fail`: it certainly had no effect (e.g. a cas whose compare failed): dropped.
//! - `info`, or no completion at all: it may take effect at any time after its invoke, or
//!   never (end = +infinity). Such a read tells nothing and is dropped.
//! - An `info` write or cas whose new value nobody ever observes (no read returns it, no cas
//!   expects it) is dropped too: applying it can only be followed by another write, so every
//!   linearization with it stays one without it. This keeps long faulty runs, which pile up
//!   unknown writes, from blowing up the search.
//!
//! The register model: a missing key reads `null`; a write sets the value; a cas sets `new`
//! only if the value equals `expected`. The workload never deletes.
//!
//! This module does not print; the CLI prints the [`Verdict`] (`Display`).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::linearizable::{self, SearchOutcome, Start, State};
use super::{lost, window, Anomaly, AnomalyKind, KeyVerdict, OpSummary, Outcome, Stats, Verdict};
use crate::history::{History, Op, OpType, ProcessId, Value, F};

/// A register operation's effect, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegF {
    /// Read returned this value (`None`: missing key).
    Read(Option<i64>),
    /// Wrote this value.
    Write(i64),
    /// Compare-and-swap `(expected, new)` that took (or may take) effect.
    Cas(i64, i64),
}

impl RegF {
    /// The value the operation needs the register to hold: a read's result (if not null),
    /// a cas's expected value.
    pub fn needs(self) -> Option<i64> {
        match self {
            RegF::Read(v) => v,
            RegF::Cas(expected, _) => Some(expected),
            RegF::Write(_) => None,
        }
    }
}

/// One effective register operation with its real-time interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RegOp {
    /// History index of the invoke record (identifies the op in reports).
    pub index: u64,
    /// The process that ran it.
    pub process: ProcessId,
    /// What it did.
    pub f: RegF,
    /// Invoke time.
    pub call_ns: u64,
    /// Completion time of an `ok` op; `None` if the outcome is unknown (+infinity).
    pub return_ns: Option<u64>,
}

impl RegOp {
    /// The value this op leaves in the register, if it writes.
    pub fn written(&self) -> Option<i64> {
        match self.f {
            RegF::Read(_) => None,
            RegF::Write(v) | RegF::Cas(_, v) => Some(v),
        }
    }

    /// How a verdict shows this op.
    pub fn summary(&self) -> OpSummary {
        let (f, value) = match self.f {
            RegF::Read(v) => (F::Read, v.map_or(Value::Null, Value::Int)),
            RegF::Write(v) => (F::Write, Value::Int(v)),
            RegF::Cas(expected, new) => (F::Cas, Value::Cas([expected, new])),
        };
        let outcome = if self.return_ns.is_some() {
            OpType::Ok
        } else {
            OpType::Info
        };
        OpSummary {
            index: self.index,
            process: self.process,
            f,
            outcome,
            value,
            invoke_ns: self.call_ns,
            complete_ns: self.return_ns,
        }
    }
}

/// How much work the checker may do before answering `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Memoised states per key for the main search (each costs ~50 bytes).
    pub states_max: u64,
    /// Memoised states per candidate window while shrinking a failing key (the prefix
    /// search uses `states_max`).
    pub window_states_max: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            states_max: 4_000_000,
            window_states_max: 200_000,
        }
    }
}

/// One key's effective operations and counts.
#[derive(Default)]
struct KeyOps {
    ops: Vec<RegOp>,
    stats: Stats,
    in_flight: u64,
}

/// An invoke waiting for its completion.
struct Open<'a> {
    invoke: &'a Op,
    key: String,
}

/// Checks a `register` history with the default [`Limits`].
pub fn check_register(history: &History) -> Verdict {
    check_register_with(history, &Limits::default())
}

/// Checks a `register` history: every key linearizable, and no named anomaly.
pub fn check_register_with(history: &History, limits: &Limits) -> Verdict {
    let (per_key, mut anomalies) = collect(history);
    let mut stats = Stats::default();
    let mut keys = BTreeMap::new();
    for (key, key_ops) in per_key {
        let verdict = check_key(&key_ops.ops, key_ops.stats, limits);
        stats.absorb(&verdict.stats);
        anomalies.extend(lost::find(&key, &key_ops.ops));
        keys.insert(key, verdict);
    }
    let all_linearizable = keys.values().all(|k| k.outcome == Outcome::Linearizable);
    Verdict {
        valid: all_linearizable && anomalies.is_empty(),
        workload: "register".to_string(),
        stats,
        keys,
        anomalies,
    }
}

/// Runs the search on one key and, if it fails, finds the window.
fn check_key(ops: &[RegOp], mut stats: Stats, limits: &Limits) -> KeyVerdict {
    let ops = prune_unobserved(ops);
    let candidates = candidates(&ops);
    let start = Start {
        state: State::Value(None),
        candidates: &candidates,
    };
    let result = linearizable::check(&ops, &start, limits.states_max);
    stats.states_explored = result.states_explored;
    let (outcome, window) = match result.outcome {
        SearchOutcome::Linearizable => (Outcome::Linearizable, None),
        SearchOutcome::Unknown => (Outcome::Unknown, None),
        SearchOutcome::NotLinearizable => (
            Outcome::NotLinearizable,
            Some(window::find(&ops, &candidates, limits)),
        ),
    };
    KeyVerdict {
        outcome,
        stats,
        window,
    }
}

/// Every value the register could ever hold: `None` and each value written.
pub(crate) fn candidates(ops: &[RegOp]) -> HashSet<Option<i64>> {
    let mut values: HashSet<Option<i64>> =
        ops.iter().filter_map(|op| op.written()).map(Some).collect();
    values.insert(None);
    values
}

/// Drops unknown-outcome writes whose value nobody observes (see the module docs).
pub(crate) fn prune_unobserved(ops: &[RegOp]) -> Vec<RegOp> {
    let observed: HashSet<i64> = ops.iter().filter_map(|op| op.f.needs()).collect();
    let keep =
        |op: &&RegOp| op.return_ns.is_some() || op.written().is_none_or(|v| observed.contains(&v));
    ops.iter().filter(keep).cloned().collect()
}

/// Pairs invokes with completions and groups the effective operations by key.
fn collect(history: &History) -> (BTreeMap<String, KeyOps>, Vec<Anomaly>) {
    let mut per_key: BTreeMap<String, KeyOps> = BTreeMap::new();
    let mut open: HashMap<ProcessId, Open> = HashMap::new();
    let mut anomalies = Vec::new();
    for record in &history.ops {
        if record.kind == OpType::Invoke {
            let Some(key) = record.key.clone() else {
                anomalies.push(malformed(record, "a register op without a key"));
                continue;
            };
            let entry = per_key.entry(key.clone()).or_default();
            entry.stats.ops += 1;
            entry.in_flight += 1;
            entry.stats.max_concurrency = entry.stats.max_concurrency.max(entry.in_flight);
            if open
                .insert(
                    record.process,
                    Open {
                        invoke: record,
                        key,
                    },
                )
                .is_some()
            {
                anomalies.push(malformed(record, "a second invoke while the first is open"));
            }
            continue;
        }
        let Some(Open { invoke, key }) = open.remove(&record.process) else {
            anomalies.push(malformed(record, "a completion without an invoke"));
            continue;
        };
        let entry = per_key.get_mut(&key).expect("invoked keys have an entry");
        entry.in_flight -= 1;
        match record.kind {
            OpType::Ok => entry.stats.ok += 1,
            OpType::Fail => entry.stats.fail += 1,
            _ => entry.stats.info += 1,
        }
        if record.kind == OpType::Fail {
            continue;
        }
        match effective(invoke, record) {
            Ok(Some(op)) => entry.ops.push(op),
            Ok(None) => {}
            Err(why) => anomalies.push(malformed(record, why)),
        }
    }
    for Open { invoke, key } in open.into_values() {
        let entry = per_key.get_mut(&key).expect("invoked keys have an entry");
        entry.stats.info += 1;
        if let Ok(Some(op)) = effective(invoke, invoke) {
            entry.ops.push(op);
        }
    }
    for entry in per_key.values_mut() {
        entry.ops.sort_by_key(|op| (op.call_ns, op.index));
    }
    (per_key, anomalies)
}

/// The effective op for an invoke and its `ok`/`info` completion (`completion == invoke`
/// when it never completed); `None` for an unknown read, which tells nothing.
fn effective(invoke: &Op, completion: &Op) -> Result<Option<RegOp>, &'static str> {
    let known = completion.kind == OpType::Ok;
    if completion.f != invoke.f || completion.key != invoke.key {
        return Err("a completion whose f or key differs from its invoke");
    }
    if completion.time_ns < invoke.time_ns {
        return Err("a completion stamped before its invoke");
    }
    let f = match (invoke.f, &invoke.value, &completion.value) {
        (F::Read, _, _) if !known => return Ok(None),
        (F::Read, _, Value::Null) => RegF::Read(None),
        (F::Read, _, Value::Int(v)) => RegF::Read(Some(*v)),
        (F::Write, Value::Int(v), _) => RegF::Write(*v),
        (F::Cas, Value::Cas([expected, new]), _) => RegF::Cas(*expected, *new),
        _ => return Err("a register op whose value has the wrong shape"),
    };
    Ok(Some(RegOp {
        index: invoke.index,
        process: invoke.process,
        f,
        call_ns: invoke.time_ns,
        return_ns: known.then_some(completion.time_ns),
    }))
}

fn malformed(record: &Op, why: &str) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::MalformedHistory,
        key: record.key.clone(),
        explanation: format!("record {}: {why}", record.index),
        ops: Vec::new(),
    }
}
