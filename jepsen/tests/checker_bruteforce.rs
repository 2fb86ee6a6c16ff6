//! Cross-checks the register checker against a brute-force oracle on tiny histories.
//!
//! The oracle knows nothing of the checker's tricks (memo, fingerprints, lazy unknown
//! writes, pruning): it tries every order of every subset of the unknown-outcome ops that
//! respects real time, straight from the definition of linearizability. Histories are
//! generated from a simulated register (linearizable) and then, half of the time, one read
//! is flipped (usually not linearizable), with many `info` ops. On every seed the checker's
//! outcome must equal the oracle's, a linearizable key must have no named anomaly (the
//! lost-write rules are sound), and a standalone window must fail from every start state.
//!
//! Replay one seed with `SEED=n cargo test -p jepsen --test checker_bruteforce`.

mod checker_support;

use std::collections::HashMap;

use checker_support::{flip_a_read, generate, seeds, Shape};
use jepsen::checker::{check_register, Outcome, Window};
use jepsen::history::{History, OpType, Value, F};

const TINY: Shape = Shape {
    keys: 1,
    processes_per_key: 4,
    ops_per_key: 10,
    values: 3,
    info_chance: 0.25,
};

/// An op as the oracle sees it: `ret == None` for an unknown outcome.
struct Oracle {
    f: F,
    value: Value,
    call: u64,
    ret: Option<u64>,
}

fn oracle_ops(history: &History) -> Vec<Oracle> {
    let mut open = HashMap::new();
    let mut ops = Vec::new();
    for record in &history.ops {
        if record.kind == OpType::Invoke {
            open.insert(record.process, record);
            continue;
        }
        let invoke = open.remove(&record.process).unwrap();
        let ret = match record.kind {
            OpType::Ok => Some(record.time_ns),
            OpType::Fail => continue,
            _ if invoke.f == F::Read => continue,
            _ => None,
        };
        let value = if invoke.f == F::Read {
            record.value.clone()
        } else {
            invoke.value.clone()
        };
        ops.push(Oracle {
            f: invoke.f,
            value,
            call: invoke.time_ns,
            ret,
        });
    }
    ops
}

/// The register after `op`, or `None` if `op` cannot happen in `state`.
fn apply(state: Option<i64>, op: &Oracle) -> Option<Option<i64>> {
    match (op.f, &op.value) {
        (F::Read, Value::Null) => (state.is_none()).then_some(state),
        (F::Read, Value::Int(v)) => (state == Some(*v)).then_some(state),
        (F::Write, Value::Int(v)) => Some(Some(*v)),
        (F::Cas, Value::Cas([e, n])) => (state == Some(*e)).then_some(Some(*n)),
        _ => panic!("unexpected op shape"),
    }
}

/// True if some real-time-respecting order of all ok ops and some unknown ones is legal.
fn linearizable(ops: &[Oracle], done: &mut Vec<bool>, state: Option<i64>) -> bool {
    let pending_ok = |j: usize, done: &Vec<bool>| !done[j] && ops[j].ret.is_some();
    if (0..ops.len()).all(|j| !pending_ok(j, done)) {
        return true;
    }
    for i in 0..ops.len() {
        if done[i] {
            continue;
        }
        // i may go next only if no unfinished ok op returned before i was invoked.
        let blocked =
            (0..ops.len()).any(|j| pending_ok(j, done) && ops[j].ret.unwrap() < ops[i].call);
        let Some(after) = apply(state, &ops[i]).filter(|_| !blocked) else {
            continue;
        };
        done[i] = true;
        let found = linearizable(ops, done, after);
        done[i] = false;
        if found {
            return true;
        }
    }
    false
}

/// A standalone window must fail whatever the register held before it: from nothing and
/// from every value the key's history writes.
fn assert_window_fails_from_any_state(seed: u64, ops: &[Oracle], window: &Window) {
    let window_ops: Vec<Oracle> = window
        .ops
        .iter()
        .map(|op| Oracle {
            f: op.f,
            value: op.value.clone(),
            call: op.invoke_ns,
            ret: op.complete_ns,
        })
        .collect();
    let mut starts: Vec<Option<i64>> = vec![None];
    for op in ops {
        match op.value {
            Value::Int(v) if op.f == F::Write => starts.push(Some(v)),
            Value::Cas([_, n]) => starts.push(Some(n)),
            _ => {}
        }
    }
    for start in starts {
        let mut done = vec![false; window_ops.len()];
        assert!(
            !linearizable(&window_ops, &mut done, start),
            "seed {seed}: the standalone window is linearizable from {start:?}"
        );
    }
}

#[test]
fn checker_agrees_with_brute_force() {
    let (mut agreed_valid, mut agreed_invalid, mut standalone) = (0, 0, 0);
    for seed in seeds(4000) {
        let mut history = generate(seed, TINY);
        if seed % 2 == 0 {
            flip_a_read(&mut history, seed, TINY.values);
        }
        let ops = oracle_ops(&history);
        let expected = linearizable(&ops, &mut vec![false; ops.len()], None);
        let verdict = check_register(&history);
        let outcome = verdict
            .keys
            .get("k0")
            .map_or(Outcome::Linearizable, |k| k.outcome);
        assert_eq!(
            outcome == Outcome::Linearizable,
            expected,
            "seed {seed}: the checker says {outcome:?}, brute force says {expected}:\n{verdict}"
        );
        if expected {
            assert!(
                verdict.anomalies.is_empty(),
                "seed {seed}: unsound anomaly:\n{verdict}"
            );
            agreed_valid += 1;
        } else {
            agreed_invalid += 1;
            let window = verdict.keys["k0"]
                .window
                .as_ref()
                .expect("a failing key has a window");
            if window.standalone {
                assert_window_fails_from_any_state(seed, &ops, window);
                standalone += 1;
            }
        }
    }
    println!(
        "agreed on {agreed_valid} linearizable and {agreed_invalid} non-linearizable \
         ({standalone} standalone windows confirmed)"
    );
}
