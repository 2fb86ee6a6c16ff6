//! The history: every operation a client invoked and how it completed, as JSON lines.
//!
//! A history is the only thing the checker sees. Each client operation appears twice: an
//! `invoke` record when the client sends it, then exactly one completion with the same
//! `process`: `ok` (it happened, `value` says what it returned), `fail` (it certainly had no
//! effect) or `info` (unknown: a timeout or a lost connection; it may take effect at any later
//! time, or never). After an `info` the process id is retired and the client continues under a
//! fresh id (Jepsen's rule), so a process never has two operations open.
//!
//! One record per line in `history.jsonl`:
//!
//! ```text
//! {"index":0,"process":3,"type":"invoke","f":"cas","key":"r1","value":[1,4],"time_ns":12345}
//! {"index":1,"process":3,"type":"ok","f":"cas","key":"r1","value":[1,4],"time_ns":23456}
//! ```
//!
//! Fault injection (the nemesis) is recorded separately in `nemesis.jsonl` as
//! [`NemesisEvent`]s, so the checker's input holds client operations only.
//!
//! This module does no IO beyond reading and writing those files, and does not judge a
//! history. The workload records through a [`Recorder`]; the checker and the report read
//! [`History`].

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A logical client. Retired after an `info` completion; never reused.
pub type ProcessId = u64;

/// What a record says about its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client is about to send the operation.
    Invoke,
    /// The operation took effect; `value` is its result.
    Ok,
    /// The operation certainly had no effect (e.g. a failed compare, a rejected request).
    Fail,
    /// Unknown outcome (timeout, connection lost): it may take effect at any later time.
    Info,
}

/// The operation's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    /// Register read: `value` null on invoke, the value read (or null = missing) on ok.
    Read,
    /// Register write: `value` is the integer written.
    Write,
    /// Register compare-and-swap: `value` is `[expected, new]`.
    Cas,
    /// Append workload transaction: `value` is a list of micro-ops.
    Append,
}

/// The function of one micro-op inside an `append` transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MicroF {
    /// Append an integer to the list at a key.
    #[serde(rename = "append")]
    Append,
    /// Read the whole list at a key.
    #[serde(rename = "r")]
    Read,
}

/// The argument or result of a micro-op.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MicroValue {
    /// A read not yet completed, or a missing key.
    Null,
    /// The element an `append` adds.
    Int(i64),
    /// The list a read returned.
    List(Vec<i64>),
}

/// One micro-op: `["append","k1",5]` or `["r","k2",[1,2]]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MicroOp(pub MicroF, pub String, pub MicroValue);

/// The `value` field of a record; its shape depends on `f` (see [`F`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// No value: a read's invoke, or a read of a missing key.
    Null,
    /// A write's value, or a read's result.
    Int(i64),
    /// A compare-and-swap: `[expected, new]`.
    Cas([i64; 2]),
    /// An append transaction's micro-ops.
    Txn(Vec<MicroOp>),
}

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0, in the order records were made.
    pub index: u64,
    /// The logical client that made the operation.
    pub process: ProcessId,
    /// Invoke or one of the completions.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The operation's function.
    pub f: F,
    /// The register's key; `None` for `append` (its keys are inside the micro-ops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Argument (invoke) or result (ok); see [`F`] for the shape.
    pub value: Value,
    /// Monotonic nanoseconds since the run started.
    pub time_ns: u64,
}

/// All client operations of a run, in record order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The records; `ops[i].index == i`.
    pub ops: Vec<Op>,
}

/// Whether a fault began or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The fault was injected.
    Start,
    /// The fault was healed.
    Stop,
}

/// One line of `nemesis.jsonl`: a fault started or stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// Monotonic nanoseconds since the run started (same clock as [`Op::time_ns`]).
    pub time_ns: u64,
    /// Start or stop.
    pub phase: Phase,
    /// The fault's kind: `kill`, `pause`, `partition`, `latency`, `loss`.
    pub fault: String,
    /// What exactly: the members affected, the partition's sides.
    pub detail: String,
}

impl History {
    /// Reads `history.jsonl`. Errors name the line that does not parse.
    pub fn read_jsonl(path: &Path) -> anyhow::Result<History> {
        let ops = read_lines(path)?;
        Ok(History { ops })
    }

    /// Writes `history.jsonl`, one record per line.
    pub fn write_jsonl(&self, path: &Path) -> anyhow::Result<()> {
        write_lines(path, &self.ops)
    }
}

/// Reads JSON lines of any record type (blank lines are skipped).
pub fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    use anyhow::Context;
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut records = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: bad record", path.display(), number + 1))?;
        records.push(record);
    }
    Ok(records)
}

/// Writes records as JSON lines.
pub fn write_lines<T: Serialize>(path: &Path, records: &[T]) -> anyhow::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Collects records from concurrent clients and the nemesis during a run.
///
/// Timestamps come from one monotonic clock started with the recorder; the index is assigned
/// under the lock, so record order equals index order and an op's completion is always
/// recorded after its invoke.
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    events: Mutex<Vec<NemesisEvent>>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the recorder was made.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records a client op (invoke or completion) stamped now.
    pub fn op(&self, process: ProcessId, kind: OpType, f: F, key: Option<String>, value: Value) {
        let mut ops = self.ops.lock().expect("recorder lock poisoned");
        let time_ns = self.now_ns();
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            process,
            kind,
            f,
            key,
            value,
            time_ns,
        });
    }

    /// Records a nemesis event stamped now.
    pub fn nemesis(&self, phase: Phase, fault: &str, detail: String) {
        let time_ns = self.now_ns();
        let event = NemesisEvent {
            time_ns,
            phase,
            fault: fault.to_string(),
            detail,
        };
        self.events
            .lock()
            .expect("recorder lock poisoned")
            .push(event);
    }

    /// The client history so far.
    pub fn history(&self) -> History {
        History {
            ops: self.ops.lock().expect("recorder lock poisoned").clone(),
        }
    }

    /// The nemesis events so far.
    pub fn events(&self) -> Vec<NemesisEvent> {
        self.events.lock().expect("recorder lock poisoned").clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's example lines parse and print back byte for byte.
    #[test]
    fn records_round_trip_in_the_documented_shape() {
        let lines = [
            r#"{"index":0,"process":3,"type":"invoke","f":"cas","key":"r1","value":[1,4],"time_ns":12345}"#,
            r#"{"index":1,"process":3,"type":"ok","f":"read","key":"r1","value":null,"time_ns":23456}"#,
            r#"{"index":2,"process":4,"type":"info","f":"write","key":"r2","value":7,"time_ns":3}"#,
            r#"{"index":3,"process":5,"type":"ok","f":"append","value":[["append","k1",5],["r","k2",[1,2]],["r","k3",null]],"time_ns":4}"#,
        ];
        for line in lines {
            let op: Op = serde_json::from_str(line).expect(line);
            assert_eq!(serde_json::to_string(&op).unwrap(), line);
        }
        let op: Op = serde_json::from_str(lines[3]).unwrap();
        let Value::Txn(micro) = op.value else {
            panic!("append value must parse as a txn")
        };
        assert_eq!(
            micro[1],
            MicroOp(MicroF::Read, "k2".into(), MicroValue::List(vec![1, 2]))
        );
    }
}
