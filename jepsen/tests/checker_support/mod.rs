//! Helpers shared by the checker's self-tests: a tiny text format for hand-written register
//! histories, and a seeded generator of histories from a simulated linearizable register.
//!
//! Used only by `tests/checker_*.rs`; each test file includes it with `mod checker_support;`.
#![allow(dead_code)]

use jepsen::history::{History, Op, OpType, Value, F};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Parses one operation per line: `process f key value invoke_ns complete_ns outcome`.
///
/// `value` is the read's result (`nil` = missing), the write's value or `e,n` for a cas;
/// `complete_ns` is `-` for an operation that never completed (then outcome must be
/// `info`). Records are sorted by time, so the lines may come in any order; an op's index
/// in the result is the index of its invoke record, returned in line order.
pub fn parse(text: &str) -> (History, Vec<u64>) {
    let mut records: Vec<(u64, u8, usize, Op)> = Vec::new();
    for (line_no, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), 7, "bad line {line:?}");
        let process: u64 = words[0].trim_start_matches('p').parse().unwrap();
        let f = match words[1] {
            "read" => F::Read,
            "write" => F::Write,
            "cas" => F::Cas,
            other => panic!("bad f {other}"),
        };
        let key = Some(words[2].to_string());
        let value = parse_value(words[3]);
        let invoke_ns: u64 = words[4].parse().unwrap();
        let kind = match words[6] {
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => panic!("bad outcome {other}"),
        };
        let invoke_value = if f == F::Read {
            Value::Null
        } else {
            value.clone()
        };
        let invoke = Op {
            index: 0,
            process,
            kind: OpType::Invoke,
            f,
            key: key.clone(),
            value: invoke_value,
            time_ns: invoke_ns,
        };
        records.push((invoke_ns, 1, line_no, invoke));
        if words[5] != "-" {
            let time_ns: u64 = words[5].parse().unwrap();
            let done = Op {
                index: 0,
                process,
                kind,
                f,
                key,
                value,
                time_ns,
            };
            records.push((time_ns, 0, line_no, done));
        }
    }
    finish(records)
}

fn parse_value(word: &str) -> Value {
    if word == "nil" {
        return Value::Null;
    }
    match word.split_once(',') {
        Some((e, n)) => Value::Cas([e.parse().unwrap(), n.parse().unwrap()]),
        None => Value::Int(word.parse().unwrap()),
    }
}

/// Sorts records by time (completions before invokes at equal times), assigns indexes and
/// returns each line's invoke index.
fn finish(mut records: Vec<(u64, u8, usize, Op)>) -> (History, Vec<u64>) {
    records.sort_by_key(|(time, rank, line, _)| (*time, *rank, *line));
    let lines = records.iter().map(|r| r.2).max().map_or(0, |m| m + 1);
    let mut invoke_index = vec![0; lines];
    let mut ops = Vec::with_capacity(records.len());
    for (i, (_, rank, line, mut op)) in records.into_iter().enumerate() {
        op.index = i as u64;
        if rank == 1 {
            invoke_index[line] = i as u64;
        }
        ops.push(op);
    }
    (History { ops }, invoke_index)
}

/// The seeds a randomized test runs: `SEED=n` replays one, otherwise `1..=count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("SEED") {
        Ok(seed) => vec![seed.parse().expect("SEED must be an integer")],
        Err(_) => (1..=count).collect(),
    }
}

/// Shape of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Keys ("k0", "k1", ...).
    pub keys: usize,
    /// Concurrent clients per key.
    pub processes_per_key: usize,
    /// Operations per key.
    pub ops_per_key: usize,
    /// Values written are drawn from `0..values`: small means many equal values (hard).
    pub values: i64,
    /// Chance that an operation's outcome is unknown (`info`).
    pub info_chance: f64,
}

/// One simulated op before it becomes records.
struct Sim {
    process: u64,
    f: F,
    arg: Value,
    call_ns: u64,
    return_ns: u64,
    point_ns: u64,
    info: bool,
    applied: bool,
}

/// A linearizable history: every op takes effect at a random instant inside its interval
/// on a real register (an `info` op takes effect or not, at random).
pub fn generate(seed: u64, shape: Shape) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut records = Vec::new();
    let mut next_process = 0u64;
    for key in 0..shape.keys {
        let mut sims = Vec::new();
        let per_process = shape.ops_per_key.div_ceil(shape.processes_per_key);
        for _ in 0..shape.processes_per_key {
            let mut process = next_process;
            next_process += 1;
            let mut now_ns: u64 = rng.gen_range(0..100);
            for _ in 0..per_process {
                let sim = random_op(&mut rng, &shape, process, now_ns);
                now_ns = sim.return_ns + rng.gen_range(1..50);
                if sim.info {
                    process = next_process;
                    next_process += 1;
                }
                sims.push(sim);
            }
        }
        records.extend(simulate(format!("k{key}"), sims));
    }
    let records = records
        .into_iter()
        .enumerate()
        .map(|(line, (t, rank, op))| (t, rank, line, op));
    finish(records.collect()).0
}

fn random_op(rng: &mut StdRng, shape: &Shape, process: u64, call_ns: u64) -> Sim {
    // Mostly short ops, a few long ones, as under faults.
    let duration_ns = if rng.gen_bool(0.05) {
        rng.gen_range(1..2000)
    } else {
        rng.gen_range(1..200)
    };
    let roll: f64 = rng.gen();
    let (f, arg) = if roll < 0.5 {
        (F::Read, Value::Null)
    } else if roll < 0.8 {
        (F::Write, Value::Int(rng.gen_range(0..shape.values)))
    } else {
        (
            F::Cas,
            Value::Cas([
                rng.gen_range(0..shape.values),
                rng.gen_range(0..shape.values),
            ]),
        )
    };
    Sim {
        process,
        f,
        arg,
        call_ns,
        return_ns: call_ns + duration_ns,
        point_ns: call_ns + rng.gen_range(0..=duration_ns),
        info: rng.gen_bool(shape.info_chance),
        applied: rng.gen_bool(0.5),
    }
}

/// Runs the ops on a register in linearization-point order and writes their records.
fn simulate(key: String, mut sims: Vec<Sim>) -> Vec<(u64, u8, Op)> {
    sims.sort_by_key(|s| s.point_ns);
    let mut state: Option<i64> = None;
    let mut records = Vec::new();
    for sim in sims {
        let effective = !sim.info || sim.applied;
        let (kind, value) = match (sim.f, &sim.arg) {
            (F::Read, _) => (OpType::Ok, state.map_or(Value::Null, Value::Int)),
            (F::Write, Value::Int(v)) => {
                if effective {
                    state = Some(*v);
                }
                (OpType::Ok, sim.arg.clone())
            }
            (F::Cas, Value::Cas([e, n])) => {
                let matched = state == Some(*e);
                if matched && effective {
                    state = Some(*n);
                }
                (
                    if matched { OpType::Ok } else { OpType::Fail },
                    sim.arg.clone(),
                )
            }
            _ => unreachable!("generated shapes only"),
        };
        let kind = if sim.info { OpType::Info } else { kind };
        let invoke = Op {
            index: 0,
            process: sim.process,
            kind: OpType::Invoke,
            f: sim.f,
            key: Some(key.clone()),
            value: sim.arg.clone(),
            time_ns: sim.call_ns,
        };
        let value = if sim.info { sim.arg.clone() } else { value };
        let done = Op {
            kind,
            value,
            time_ns: sim.return_ns,
            ..invoke.clone()
        };
        records.push((sim.call_ns, 1, invoke));
        records.push((sim.return_ns, 0, done));
    }
    records
}

/// Changes the result of one random `ok` read to a different value; returns the index of
/// that read's invoke, or `None` if the history has no ok read.
pub fn flip_a_read(history: &mut History, seed: u64, values: i64) -> Option<u64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let reads: Vec<usize> = (0..history.ops.len())
        .filter(|&i| history.ops[i].f == F::Read && history.ops[i].kind == OpType::Ok)
        .collect();
    if reads.is_empty() {
        return None;
    }
    let target = reads[rng.gen_range(0..reads.len())];
    let old = history.ops[target].value.clone();
    loop {
        let v = rng.gen_range(-1..values);
        let new = if v < 0 { Value::Null } else { Value::Int(v) };
        if new != old {
            history.ops[target].value = new;
            let process = history.ops[target].process;
            let invoke = history.ops[..target]
                .iter()
                .rev()
                .find(|op| op.process == process);
            return Some(invoke.expect("a completion follows its invoke").index);
        }
    }
}

/// Parses append transactions, one per line: `process invoke_ns complete_ns outcome mop...`
/// where a mop is `append:k:5`, `r:k:1,2`, `r:k:` (empty list) or `r:k:nil` (missing).
/// The invoke records carry reads as `null`; returns each line's invoke index.
pub fn parse_txns(text: &str) -> (History, Vec<u64>) {
    use jepsen::history::{MicroF, MicroOp, MicroValue};
    let mut records: Vec<(u64, u8, usize, Op)> = Vec::new();
    for (line_no, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let process: u64 = words[0].trim_start_matches('p').parse().unwrap();
        let invoke_ns: u64 = words[1].parse().unwrap();
        let kind = match words[3] {
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => panic!("bad outcome {other}"),
        };
        let mut invoked = Vec::new();
        let mut completed = Vec::new();
        for mop in &words[4..] {
            let parts: Vec<&str> = mop.splitn(3, ':').collect();
            let key = parts[1].to_string();
            if parts[0] == "append" {
                let element = MicroValue::Int(parts[2].parse().unwrap());
                invoked.push(MicroOp(MicroF::Append, key.clone(), element.clone()));
                completed.push(MicroOp(MicroF::Append, key, element));
                continue;
            }
            let result = match parts[2] {
                "nil" => MicroValue::Null,
                "" => MicroValue::List(Vec::new()),
                list => MicroValue::List(list.split(',').map(|e| e.parse().unwrap()).collect()),
            };
            invoked.push(MicroOp(MicroF::Read, key.clone(), MicroValue::Null));
            completed.push(MicroOp(MicroF::Read, key, result));
        }
        let invoke = Op {
            index: 0,
            process,
            kind: OpType::Invoke,
            f: F::Append,
            key: None,
            value: Value::Txn(invoked),
            time_ns: invoke_ns,
        };
        records.push((invoke_ns, 1, line_no, invoke.clone()));
        if words[2] != "-" {
            let time_ns = words[2].parse().unwrap();
            let done = Op {
                kind,
                value: Value::Txn(completed),
                time_ns,
                ..invoke
            };
            records.push((time_ns, 0, line_no, done));
        }
    }
    finish(records)
}

/// Shape of a generated append history.
#[derive(Clone, Copy, Debug)]
pub struct TxnShape {
    /// Keys ("k0", ...).
    pub keys: usize,
    /// Concurrent clients.
    pub processes: usize,
    /// Transactions per client.
    pub txns_per_process: usize,
    /// Chance that a transaction's outcome is unknown.
    pub info_chance: f64,
}

/// A strictly serializable append history: each transaction takes effect atomically at a
/// random instant inside its interval (an `info` one takes effect or not, at random).
/// Elements are unique per key.
pub fn generate_txns(seed: u64, shape: TxnShape) -> History {
    use jepsen::history::{MicroF, MicroOp, MicroValue};
    let mut rng = StdRng::seed_from_u64(seed);
    // (point, call, return, process, micro-ops, info, applied)
    let mut txns = Vec::new();
    let mut next_process = 0u64;
    let mut next_element = 1i64;
    for _ in 0..shape.processes {
        let mut process = next_process;
        next_process += 1;
        let mut now_ns: u64 = rng.gen_range(0..100);
        for _ in 0..shape.txns_per_process {
            let duration_ns = rng.gen_range(1..300);
            let mut mops = Vec::new();
            for _ in 0..rng.gen_range(1..=3) {
                let key = format!("k{}", rng.gen_range(0..shape.keys));
                if rng.gen_bool(0.5) {
                    mops.push(MicroOp(MicroF::Append, key, MicroValue::Int(next_element)));
                    next_element += 1;
                } else {
                    mops.push(MicroOp(MicroF::Read, key, MicroValue::Null));
                }
            }
            let info = rng.gen_bool(shape.info_chance);
            let point_ns = now_ns + rng.gen_range(0..=duration_ns);
            let applied = rng.gen_bool(0.5);
            txns.push((
                point_ns,
                now_ns,
                now_ns + duration_ns,
                process,
                mops,
                info,
                applied,
            ));
            now_ns += duration_ns + rng.gen_range(1..50);
            if info {
                process = next_process;
                next_process += 1;
            }
        }
    }
    txns.sort_by_key(|t| t.0);
    let mut lists: std::collections::HashMap<String, Vec<i64>> = Default::default();
    let mut records = Vec::new();
    for (line, (_, call_ns, return_ns, process, mops, info, applied)) in
        txns.into_iter().enumerate()
    {
        let mut results = Vec::new();
        for MicroOp(f, key, value) in &mops {
            let list = lists.entry(key.clone()).or_default();
            match (f, value) {
                (MicroF::Append, MicroValue::Int(e)) => {
                    if !info || applied {
                        list.push(*e);
                    }
                    results.push(MicroOp(*f, key.clone(), value.clone()));
                }
                _ => results.push(MicroOp(*f, key.clone(), MicroValue::List(list.clone()))),
            }
        }
        let invoke = Op {
            index: 0,
            process,
            kind: OpType::Invoke,
            f: F::Append,
            key: None,
            value: Value::Txn(mops),
            time_ns: call_ns,
        };
        let done = if info {
            Op {
                kind: OpType::Info,
                time_ns: return_ns,
                ..invoke.clone()
            }
        } else {
            Op {
                kind: OpType::Ok,
                value: Value::Txn(results),
                time_ns: return_ns,
                ..invoke.clone()
            }
        };
        records.push((call_ns, 1, line, invoke));
        records.push((return_ns, 0, line, done));
    }
    finish(records).0
}

/// Corrupts one random non-empty read in an `ok` transaction: drops its last element, or
/// swaps its first two. Returns false if there was no such read.
pub fn corrupt_a_list_read(history: &mut History, seed: u64) -> bool {
    use jepsen::history::{MicroF, MicroOp, MicroValue};
    let mut rng = StdRng::seed_from_u64(seed ^ 0x11575);
    let mut spots = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        let Value::Txn(mops) = &op.value else {
            continue;
        };
        if op.kind != OpType::Ok {
            continue;
        }
        for (j, MicroOp(f, _, value)) in mops.iter().enumerate() {
            if let (MicroF::Read, MicroValue::List(list)) = (f, value) {
                if !list.is_empty() {
                    spots.push((i, j));
                }
            }
        }
    }
    if spots.is_empty() {
        return false;
    }
    let (i, j) = spots[rng.gen_range(0..spots.len())];
    let Value::Txn(mops) = &mut history.ops[i].value else {
        unreachable!()
    };
    let MicroValue::List(list) = &mut mops[j].2 else {
        unreachable!()
    };
    if list.len() >= 2 && rng.gen_bool(0.5) {
        list.swap(0, 1);
    } else {
        list.pop();
    }
    true
}
