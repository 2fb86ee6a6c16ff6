//! The `append` workload's checker ("Elle-lite"): transactions append unique integers to
//! lists and read whole lists; because appends only ever grow a list, every read reveals
//! the order of all appends before it, and that order yields the dependencies between
//! transactions.
//!
//! Rules, per key (elements are unique per key: the workload never appends a value twice):
//! - **Order.** The longest list any `ok` read returned is the key's observed order. Every
//!   read must be a prefix of it (`IncompatibleOrder`), hold no element twice and no element
//!   that no transaction appended (`DuplicateOrPhantom`).
//! - **Lost append.** etcd transactions are strictly serializable, so a read in a transaction
//!   invoked after an `ok` append's transaction completed must contain that element
//!   (`LostAppend`).
//! - **Dependencies** (Adya): for consecutive elements `a, b` of the order, appender(a) →
//!   appender(b) (ww); for a read ending in `a`, appender(a) → reader (wr); for a read of
//!   length n, reader → appender(order[n]) (rw: it read the state before that append); an
//!   `ok` append no read ever shows comes after every read of the key (rw from the reads of
//!   the whole order).
//! - **Real time**: T1 → T2 (rt) when T1 completed before T2 was invoked. Only the frontier
//!   is kept (T1 → T2 is left out when T1 → T3 → T2 already holds in real time), which keeps
//!   the edges near n × concurrency instead of n².
//!
//! A cycle among these edges means no serial order that respects real time exists: the
//! history is not strictly serializable, which etcd transactions promise
//! (`DependencyCycle`, found by `cycle`, printed with its edge kinds).
//!
//! Limits (documented in `docs/testing.md`): only what reads reveal is checked: appends
//! nobody read after are ordered by nothing; `info` transactions count only through the
//! elements reads show (and follow, in real time, what completed before their invoke).
//!
//! Does no IO; called by the CLI for `--workload append` and by `tests/checker_append.rs`.

use std::collections::{BTreeMap, HashMap};

use super::cycle::{self, Edge, EdgeKind};
use super::{Anomaly, AnomalyKind, OpSummary, Stats, Verdict};
use crate::history::{History, MicroF, MicroOp, MicroValue, Op, OpType, ProcessId, Value, F};

/// Anomalies reported per kind and key.
const REPORTED_MAX: usize = 3;

/// One `ok` or unknown-outcome transaction.
pub(crate) struct Txn {
    /// History index of the invoke record.
    pub index: u64,
    process: ProcessId,
    call_ns: u64,
    /// `None`: outcome unknown.
    return_ns: Option<u64>,
    /// Reads carry their results for `ok` transactions.
    mops: Vec<MicroOp>,
}

impl Txn {
    pub(crate) fn summary(&self) -> OpSummary {
        OpSummary {
            index: self.index,
            process: self.process,
            f: F::Append,
            outcome: if self.return_ns.is_some() {
                OpType::Ok
            } else {
                OpType::Info
            },
            value: Value::Txn(self.mops.clone()),
            invoke_ns: self.call_ns,
            complete_ns: self.return_ns,
        }
    }
}

/// What the history says about one key.
#[derive(Default)]
struct KeyFacts {
    /// element → transaction that appended it.
    appender: HashMap<i64, usize>,
    /// (reading transaction, list read), `ok` transactions only.
    reads: Vec<(usize, Vec<i64>)>,
}

/// Checks an `append` history: list orders consistent, no lost appends, serializable.
pub fn check_append(history: &History) -> Verdict {
    let (txns, stats, mut anomalies) = collect(history);
    let mut facts: BTreeMap<String, KeyFacts> = BTreeMap::new();
    for (t, txn) in txns.iter().enumerate() {
        for MicroOp(f, key, value) in &txn.mops {
            let key_facts = facts.entry(key.clone()).or_default();
            match (f, value) {
                (MicroF::Append, MicroValue::Int(v)) => {
                    if key_facts.appender.insert(*v, t).is_some() {
                        anomalies.push(malformed(txn, "the same element appended twice"));
                    }
                }
                (MicroF::Read, MicroValue::List(list)) if txn.return_ns.is_some() => {
                    key_facts.reads.push((t, list.clone()));
                }
                (MicroF::Read, MicroValue::Null) if txn.return_ns.is_some() => {
                    key_facts.reads.push((t, Vec::new()));
                }
                (MicroF::Read, _) => {}
                _ => anomalies.push(malformed(txn, "a micro-op whose value has the wrong shape")),
            }
        }
    }
    let mut edges = Vec::new();
    for (key, key_facts) in &facts {
        let order = longest_read(key_facts);
        anomalies.extend(order_anomalies(key, key_facts, &order, &txns));
        anomalies.extend(lost_appends(key, key_facts, &order, &txns));
        edges.extend(dependencies(key_facts, &order, &txns));
    }
    edges.extend(realtime(&txns));
    anomalies.extend(cycle::find(txns.len(), &edges, &txns));
    Verdict {
        valid: anomalies.is_empty(),
        workload: "append".to_string(),
        stats,
        keys: BTreeMap::new(),
        anomalies,
    }
}

/// Pairs invokes with completions; keeps `ok` and unknown-outcome transactions.
fn collect(history: &History) -> (Vec<Txn>, Stats, Vec<Anomaly>) {
    let mut open: HashMap<ProcessId, &Op> = HashMap::new();
    let (mut txns, mut stats, mut anomalies) = (Vec::new(), Stats::default(), Vec::new());
    let mut in_flight = 0u64;
    let unknown = |invoke: &Op| Txn {
        index: invoke.index,
        process: invoke.process,
        call_ns: invoke.time_ns,
        return_ns: None,
        mops: micro_ops(&invoke.value),
    };
    for record in &history.ops {
        if record.kind == OpType::Invoke {
            stats.ops += 1;
            in_flight += 1;
            stats.max_concurrency = stats.max_concurrency.max(in_flight);
            open.insert(record.process, record);
            continue;
        }
        let Some(invoke) = open.remove(&record.process) else {
            anomalies.push(Anomaly {
                kind: AnomalyKind::MalformedHistory,
                key: None,
                explanation: format!("record {}: a completion without an invoke", record.index),
                ops: Vec::new(),
            });
            continue;
        };
        in_flight -= 1;
        if record.time_ns < invoke.time_ns {
            anomalies.push(malformed(
                &unknown(invoke),
                "a completion stamped before its invoke",
            ));
            continue;
        }
        match record.kind {
            OpType::Ok => {
                stats.ok += 1;
                txns.push(Txn {
                    return_ns: Some(record.time_ns),
                    mops: micro_ops(&record.value),
                    ..unknown(invoke)
                });
            }
            OpType::Fail => stats.fail += 1,
            _ => {
                stats.info += 1;
                txns.push(unknown(invoke));
            }
        }
    }
    stats.info += open.len() as u64;
    txns.extend(open.into_values().map(unknown));
    (txns, stats, anomalies)
}

fn micro_ops(value: &Value) -> Vec<MicroOp> {
    match value {
        Value::Txn(mops) => mops.clone(),
        _ => Vec::new(),
    }
}

fn malformed(txn: &Txn, why: &str) -> Anomaly {
    Anomaly {
        kind: AnomalyKind::MalformedHistory,
        key: None,
        explanation: format!("transaction #{}: {why}", txn.index),
        ops: vec![txn.summary()],
    }
}

fn longest_read(facts: &KeyFacts) -> Vec<i64> {
    let longest = facts.reads.iter().max_by_key(|(_, list)| list.len());
    longest.map(|(_, list)| list.clone()).unwrap_or_default()
}

/// Reads that are not prefixes of the order, or hold duplicate or phantom elements.
fn order_anomalies(key: &str, facts: &KeyFacts, order: &[i64], txns: &[Txn]) -> Vec<Anomaly> {
    let mut found = Vec::new();
    let longest = facts
        .reads
        .iter()
        .find(|(_, list)| list.as_slice() == order);
    for (reader, list) in &facts.reads {
        let mut seen = std::collections::HashSet::new();
        let bad_element = list
            .iter()
            .find(|e| !seen.insert(**e) || !facts.appender.contains_key(*e));
        let (kind, explanation) = if let Some(e) = bad_element {
            let why = format!(
                "read #{} of {key:?} holds {e} twice or nobody appended it",
                txns[*reader].index
            );
            (AnomalyKind::DuplicateOrPhantom, why)
        } else if !order.starts_with(list) {
            let why = format!(
                "read #{} of {key:?} is not a prefix of the longest read",
                txns[*reader].index
            );
            (AnomalyKind::IncompatibleOrder, why)
        } else {
            continue;
        };
        if found.iter().filter(|a: &&Anomaly| a.kind == kind).count() < REPORTED_MAX {
            let mut ops = vec![txns[*reader].summary()];
            ops.extend(longest.map(|(t, _)| txns[*t].summary()));
            found.push(Anomaly {
                kind,
                key: Some(key.to_string()),
                explanation,
                ops,
            });
        }
    }
    found
}

/// Reads that miss an element appended by a transaction that completed before they began.
fn lost_appends(key: &str, facts: &KeyFacts, order: &[i64], txns: &[Txn]) -> Vec<Anomaly> {
    let position: HashMap<i64, usize> = order.iter().enumerate().map(|(i, e)| (*e, i)).collect();
    let mut appends: Vec<(u64, i64, usize)> = facts
        .appender
        .iter()
        .filter_map(|(e, t)| txns[*t].return_ns.map(|end| (end, *e, *t)))
        .collect();
    appends.sort_unstable();
    let mut reads: Vec<&(usize, Vec<i64>)> = facts.reads.iter().collect();
    reads.sort_by_key(|(t, _)| txns[*t].call_ns);
    // The required element furthest along the order (usize::MAX: one never read at all).
    let mut furthest: Option<(usize, usize)> = None;
    let (mut next, mut found) = (0, Vec::new());
    for (reader, list) in reads {
        while next < appends.len() && appends[next].0 < txns[*reader].call_ns {
            let (_, element, appender) = appends[next];
            let at = position.get(&element).copied().unwrap_or(usize::MAX);
            if furthest.is_none_or(|(best, _)| at > best) {
                furthest = Some((at, appender));
            }
            next += 1;
        }
        let Some((at, appender)) = furthest else {
            continue;
        };
        if at < list.len() || found.len() >= REPORTED_MAX {
            continue;
        }
        found.push(Anomaly {
            kind: AnomalyKind::LostAppend,
            key: Some(key.to_string()),
            explanation: format!(
                "read #{} of {key:?} misses the append of #{}, which completed before it began",
                txns[*reader].index, txns[appender].index
            ),
            ops: vec![txns[appender].summary(), txns[*reader].summary()],
        });
    }
    found
}

/// The ww, wr and rw edges one key's order and reads imply.
fn dependencies(facts: &KeyFacts, order: &[i64], txns: &[Txn]) -> Vec<Edge> {
    let appender = |e: &i64| facts.appender.get(e).copied();
    let mut edges = Vec::new();
    let mut push = |from: Option<usize>, to: Option<usize>, kind| {
        if let (Some(from), Some(to)) = (from, to) {
            if from != to {
                edges.push(Edge { from, to, kind });
            }
        }
    };
    for pair in order.windows(2) {
        push(appender(&pair[0]), appender(&pair[1]), EdgeKind::Ww);
    }
    // Acknowledged appends no read ever saw: every read of the key came before them (a read
    // after would show them), so the reads of the whole order point at each of them.
    let in_order: std::collections::HashSet<i64> = order.iter().copied().collect();
    let unseen: Vec<usize> = facts
        .appender
        .iter()
        .filter(|(e, t)| !in_order.contains(e) && txns[**t].return_ns.is_some())
        .map(|(_, t)| *t)
        .collect();
    for (reader, list) in &facts.reads {
        push(list.last().and_then(appender), Some(*reader), EdgeKind::Wr);
        if !order.starts_with(list) {
            continue;
        }
        push(
            Some(*reader),
            order.get(list.len()).and_then(appender),
            EdgeKind::Rw,
        );
        if list.len() == order.len() {
            for &appender in &unseen {
                push(Some(*reader), Some(appender), EdgeKind::Rw);
            }
        }
    }
    edges
}

/// Real-time edges, transitively reduced: T1 → T2 for each T1 completed before T2's invoke
/// that no other transaction completed before T2's invoke began after T1 completed.
fn realtime(txns: &[Txn]) -> Vec<Edge> {
    let mut by_call: Vec<usize> = (0..txns.len()).collect();
    by_call.sort_by_key(|&t| txns[t].call_ns);
    let mut by_return: Vec<usize> = (0..txns.len())
        .filter(|&t| txns[t].return_ns.is_some())
        .collect();
    by_return.sort_by_key(|&t| txns[t].return_ns);
    // Completed so far; those that completed before the latest invoke among them are implied.
    let (mut frontier, mut latest_call_ns, mut next) = (Vec::<usize>::new(), 0, 0);
    let mut edges = Vec::new();
    for to in by_call {
        let now_ns = txns[to].call_ns;
        while next < by_return.len() && txns[by_return[next]].return_ns < Some(now_ns) {
            let done = by_return[next];
            latest_call_ns = latest_call_ns.max(txns[done].call_ns);
            frontier.push(done);
            frontier.retain(|&t| txns[t].return_ns >= Some(latest_call_ns));
            next += 1;
        }
        edges.extend(frontier.iter().map(|&from| Edge {
            from,
            to,
            kind: EdgeKind::Rt,
        }));
    }
    edges
}
