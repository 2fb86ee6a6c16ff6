//! The checker: judges a [`History`] and returns a [`Verdict`] (written as `verdict.json`).
//!
//! - [`check_register`]: linearizability of the `register` workload, one key at a time
//!   (linearizability is compositional, so a history is linearizable iff each key's
//!   sub-history is), plus named anomalies (lost writes, stale reads) found by simple
//!   real-time rules in `lost`. On a violation the verdict carries the smallest window of
//!   operations that cannot be ordered (`window`).
//! - [`check_append`]: the `append` workload: reads must be prefixes of one list order per
//!   key, no acknowledged append may go missing, and transactions must be strictly
//!   serializable (a cycle check over ww/wr/rw and real-time edges).
//!
//! The checker reads the history only: it does no IO, starts nothing and never looks at
//! the nemesis. The CLI and the report (J1) call it after a run; the self-tests in
//! `jepsen/tests/checker_*.rs` call it on hand-written and generated histories.

mod append;
mod cycle;
mod linearizable;
mod lost;
mod register;
mod window;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::history::{MicroF, MicroOp, MicroValue, OpType, ProcessId, Value, F};

pub use append::check_append;
pub use register::{check_register, check_register_with, Limits};

/// Counts over (part of) a history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Operations invoked.
    pub ops: u64,
    /// Completed `ok`.
    pub ok: u64,
    /// Completed `fail` (certainly no effect).
    pub fail: u64,
    /// Completed `info`, or never completed (outcome unknown).
    pub info: u64,
    /// Most operations in flight at once on one key (by record order).
    pub max_concurrency: u64,
    /// Distinct (linearized set, state) pairs the search visited.
    pub states_explored: u64,
}

impl Stats {
    /// Adds another key's counts; concurrency takes the maximum.
    pub fn absorb(&mut self, other: &Stats) {
        self.ops += other.ops;
        self.ok += other.ok;
        self.fail += other.fail;
        self.info += other.info;
        self.max_concurrency = self.max_concurrency.max(other.max_concurrency);
        self.states_explored += other.states_explored;
    }
}

/// The search's conclusion for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Some order of the key's operations respects real time and the register's rules.
    Linearizable,
    /// No such order exists; [`KeyVerdict::window`] shows why.
    NotLinearizable,
    /// The search hit its state limit ([`Limits::states_max`]) before deciding.
    Unknown,
}

/// One operation as a verdict shows it: the invoke's argument or the ok's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpSummary {
    /// History index of the operation's invoke record.
    pub index: u64,
    /// The process that ran it.
    pub process: ProcessId,
    /// Its function.
    pub f: F,
    /// `ok`, `fail` or `info` (`info` also for never completed).
    pub outcome: OpType,
    /// A read's result, a write's value, a cas's `[expected, new]`.
    pub value: Value,
    /// When it was invoked.
    pub invoke_ns: u64,
    /// When it completed; `None` if its outcome is unknown (end = +infinity).
    pub complete_ns: Option<u64>,
}

/// Elements of a list shown in full; longer lists show their length and last few elements
/// (the end of a list is where orders disagree).
const LIST_SHOWN_MAX: usize = 8;

/// A value as one line: long lists in append transactions are abbreviated.
fn short_value(value: &Value) -> String {
    let Value::Txn(micro_ops) = value else {
        return serde_json::to_string(value).unwrap_or_default();
    };
    let shown: Vec<String> = micro_ops
        .iter()
        .map(|MicroOp(f, key, value)| match (f, value) {
            (MicroF::Append, MicroValue::Int(e)) => format!("append {key} {e}"),
            (MicroF::Read, MicroValue::List(list)) if list.len() > LIST_SHOWN_MAX => {
                let tail: Vec<String> = list[list.len() - LIST_SHOWN_MAX / 2..]
                    .iter()
                    .map(i64::to_string)
                    .collect();
                format!(
                    "r {key} [.., {}] ({} elements)",
                    tail.join(", "),
                    list.len()
                )
            }
            (MicroF::Read, MicroValue::List(list)) => format!("r {key} {list:?}"),
            (f, value) => format!("{f:?} {key} {value:?}"),
        })
        .collect();
    shown.join("; ")
}

impl fmt::Display for OpSummary {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = short_value(&self.value);
        let end = match self.complete_ns {
            Some(ns) => format!("{:.3}ms", ns as f64 / 1e6),
            None => "+inf".to_string(),
        };
        let outcome = format!("{:?}", self.outcome).to_lowercase();
        let f = match self.f {
            F::Append => "txn".to_string(),
            f => format!("{f:?}").to_lowercase(),
        };
        write!(
            out,
            "#{:<6} p{:<4} {:<5} {:<12} {:<4} [{:.3}ms .. {}]",
            self.index,
            self.process,
            f,
            value,
            outcome,
            self.invoke_ns as f64 / 1e6,
            end
        )
    }
}

/// The smallest stretch of a key's history that cannot be ordered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Completed operations in the shortest failing prefix (by completion order).
    pub prefix_ok_ops: u64,
    /// Whether `ops` fail on their own, from any value the register could hold before them
    /// (`true`), or are only the tail of the failing prefix shown for context (`false`).
    pub standalone: bool,
    /// The operations, by invoke time; the last one to complete is `last`.
    pub ops: Vec<OpSummary>,
    /// History index (invoke) of the operation whose completion made the prefix fail.
    pub last: u64,
}

/// One key's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyVerdict {
    /// Linearizable, not, or undecided.
    pub outcome: Outcome,
    /// Counts for this key.
    pub stats: Stats,
    /// Set when the key is not linearizable.
    pub window: Option<Window>,
}

/// The kind of a named anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// An acknowledged write (or cas) was overwritten by an older value: a read that began
    /// after the write completed returned a value whose every possible source write had
    /// finished before the acknowledged write began.
    LostWrite,
    /// A value came back: a read returned it after another read had already returned a newer
    /// value, and no write of it could have happened in between.
    StaleRead,
    /// A history record that does not fit the format (completion without an invoke, a value
    /// of the wrong shape).
    MalformedHistory,
    /// Append: a read of a list is not a prefix of the key's longest observed list.
    IncompatibleOrder,
    /// Append: the same element appears twice in one list, or an element nobody appended.
    DuplicateOrPhantom,
    /// Append: an `ok` transaction's append is missing from a read that must include it.
    LostAppend,
    /// Append: transactions whose ww/wr/rw/real-time dependencies form a cycle (not
    /// strictly serializable).
    DependencyCycle,
}

/// A named anomaly with the operations that show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// What went wrong.
    pub kind: AnomalyKind,
    /// The key concerned, if there is one.
    pub key: Option<String>,
    /// One sentence for a human.
    pub explanation: String,
    /// The operations involved.
    pub ops: Vec<OpSummary>,
}

/// The checker's answer for a whole history (`verdict.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// True iff every key is linearizable (or the append history serializable) and no anomaly
    /// was found. Undecided keys make it false: an unproven history is not valid.
    pub valid: bool,
    /// `register` or `append`.
    pub workload: String,
    /// Counts over the whole history.
    pub stats: Stats,
    /// Per-key results (register workload; empty for append).
    pub keys: BTreeMap<String, KeyVerdict>,
    /// Named anomalies, at most a few per kind and key.
    pub anomalies: Vec<Anomaly>,
}

impl fmt::Display for Verdict {
    /// A readable report: the summary, then every failing key's window and each anomaly.
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            out,
            "{} verdict: {} ({} ops: {} ok, {} fail, {} info; max concurrency {}; {} states)",
            self.workload,
            if self.valid { "VALID" } else { "INVALID" },
            s.ops,
            s.ok,
            s.fail,
            s.info,
            s.max_concurrency,
            s.states_explored
        )?;
        for (key, verdict) in &self.keys {
            if verdict.outcome != Outcome::Linearizable {
                writeln!(out, "key {key:?}: {:?}", verdict.outcome)?;
            }
            if let Some(window) = &verdict.window {
                let what = if window.standalone {
                    "these operations cannot be ordered, whatever the register held before"
                } else {
                    "the failing prefix ends with these operations"
                };
                writeln!(
                    out,
                    "  first {} completed ops already fail; {what} (* = last to complete):",
                    window.prefix_ok_ops
                )?;
                for op in &window.ops {
                    let mark = if op.index == window.last { '*' } else { ' ' };
                    writeln!(out, "  {mark} {op}")?;
                }
            }
        }
        for anomaly in &self.anomalies {
            writeln!(
                out,
                "{:?} on {:?}: {}",
                anomaly.kind, anomaly.key, anomaly.explanation
            )?;
            for op in &anomaly.ops {
                writeln!(out, "    {op}")?;
            }
        }
        Ok(())
    }
}
