//! The register checker on hand-written histories: each test is a small story in the
//! `process f key value invoke_ns complete_ns outcome` format of `checker_support::parse`.
//!
//! Linearizable ones must be judged valid (including the cases that need `info` ops to be
//! assumed applied, or assumed not applied); non-linearizable ones must be judged invalid,
//! on the right key, with a window that holds the operations that cannot be ordered.

mod checker_support;

use checker_support::parse;
use jepsen::checker::{check_register, check_register_with, AnomalyKind, Limits, Outcome, Verdict};
use jepsen::history::{History, Op, OpType, Value, F};

fn check(text: &str) -> (Verdict, Vec<u64>) {
    let (history, index) = parse(text);
    let verdict = check_register(&history);
    println!("{verdict}");
    (verdict, index)
}

fn assert_valid(text: &str) {
    let (verdict, _) = check(text);
    assert!(verdict.valid, "expected a valid verdict:\n{verdict}");
}

/// Window op indexes of `key`, which must be non-linearizable.
fn window_of(verdict: &Verdict, key: &str) -> (Vec<u64>, u64, bool) {
    assert!(!verdict.valid);
    let key_verdict = &verdict.keys[key];
    assert_eq!(key_verdict.outcome, Outcome::NotLinearizable, "{verdict}");
    let window = key_verdict
        .window
        .as_ref()
        .expect("a failing key has a window");
    (
        window.ops.iter().map(|op| op.index).collect(),
        window.last,
        window.standalone,
    )
}

#[test]
fn sequential_history_is_valid() {
    assert_valid(
        "p1 read  x nil 0  5  ok
         p1 write x 1   10 20 ok
         p2 read  x 1   30 40 ok
         p2 cas   x 1,2 50 60 ok
         p1 read  x 2   70 80 ok",
    );
}

#[test]
fn concurrent_overlaps_may_take_either_order() {
    // w1 and w2 overlap; the readers see 2 then 1, so w2 took effect first.
    assert_valid(
        "p1 write x 1   0  100 ok
         p2 write x 2   0  100 ok
         p3 read  x nil 1  2   ok
         p3 read  x 2   10 20  ok
         p4 read  x 1   30 40  ok
         p3 read  x 1   50 60  ok",
    );
}

#[test]
fn info_write_assumed_applied() {
    // The write timed out, yet later reads see it: it happened after its invoke.
    assert_valid(
        "p1 write x 1 0  10 ok
         p2 write x 5 20 30 info
         p3 read  x 1 25 26 ok
         p3 read  x 5 90 95 ok
         p4 read  x 5 96 99 ok",
    );
}

#[test]
fn info_write_assumed_never_applied() {
    assert_valid(
        "p1 write x 1 0  10 ok
         p2 write x 5 20 -  info
         p3 read  x 1 30 40 ok
         p3 read  x 1 50 60 ok",
    );
}

#[test]
fn cas_chain_in_any_real_time_order() {
    // Three concurrent cas ops only fit as 0→1→2→3; the fail cas had no effect.
    assert_valid(
        "p1 write x 0   0  5   ok
         p1 cas   x 2,3 10 100 ok
         p2 cas   x 0,1 10 100 ok
         p3 cas   x 1,2 10 100 ok
         p4 cas   x 7,8 10 100 fail
         p4 read  x 3   110 120 ok",
    );
}

#[test]
fn info_cas_assumed_applied() {
    assert_valid(
        "p1 write x 1   0  10 ok
         p2 cas   x 1,4 20 30 info
         p3 read  x 4   40 50 ok",
    );
}

#[test]
fn stale_read_after_acknowledged_write_is_invalid() {
    let (verdict, index) = check(
        "p1 write x 1 0  10 ok
         p1 write x 2 20 30 ok
         p2 read  x 1 40 50 ok
         p3 write y 7 0  10 ok
         p3 read  y 7 20 30 ok",
    );
    assert_eq!(verdict.keys["y"].outcome, Outcome::Linearizable);
    let (ops, last, standalone) = window_of(&verdict, "x");
    assert_eq!(last, index[2]);
    assert!(standalone);
    assert_eq!(
        ops,
        vec![index[1], index[2]],
        "the window is `write 2; read 1`"
    );
    assert!(verdict
        .anomalies
        .iter()
        .any(|a| a.kind == AnomalyKind::LostWrite));
}

#[test]
fn read_of_a_value_never_written_is_invalid() {
    let (verdict, index) = check(
        "p1 write x 1 0  10 ok
         p2 read  x 7 20 30 ok
         p1 read  x 1 40 50 ok",
    );
    let (ops, last, standalone) = window_of(&verdict, "x");
    assert_eq!((ops, last, standalone), (vec![index[1]], index[1], true));
}

#[test]
fn two_readers_disagreeing_on_order_are_invalid() {
    // p3 sees 1 then 2, p4 sees 2 then 1, all in real-time order: each write can take
    // effect once, so the value cannot go 1 → 2 → 1.
    let (verdict, index) = check(
        "p1 write x 1 0  100 ok
         p2 write x 2 0  100 ok
         p3 read  x 1 10 20  ok
         p4 read  x 2 30 40  ok
         p3 read  x 2 50 60  ok
         p4 read  x 1 70 80  ok",
    );
    let (ops, last, _) = window_of(&verdict, "x");
    assert_eq!(
        last, index[5],
        "the read at 70..80 is the one that cannot be ordered"
    );
    for line in [0, 1, 5] {
        assert!(
            ops.contains(&index[line]),
            "window must show line {line}: {ops:?}"
        );
    }
}

#[test]
fn lost_acknowledged_write_is_invalid_and_named() {
    // After healing, the final read shows 2: the acknowledged write of 3 is gone.
    let (verdict, index) = check(
        "p1 write x 1 0   10  ok
         p1 write x 2 20  30  ok
         p2 read  x 2 40  50  ok
         p1 write x 3 60  70  ok
         p2 read  x 2 100 110 ok",
    );
    let (ops, last, standalone) = window_of(&verdict, "x");
    assert_eq!(last, index[4]);
    assert!(standalone);
    assert_eq!(ops, vec![index[3], index[4]]);
    let lost = verdict
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::LostWrite);
    let lost = lost.expect("a LostWrite anomaly");
    assert!(lost.ops.iter().any(|op| op.index == index[3]), "{lost:?}");
}

#[test]
fn resurrected_value_is_a_stale_read() {
    let (verdict, index) = check(
        "p1 write x 1 0  10 ok
         p2 read  x 1 20 30 ok
         p1 write x 2 40 50 ok
         p2 read  x 2 60 70 ok
         p3 read  x 1 80 90 ok",
    );
    let (_, last, _) = window_of(&verdict, "x");
    assert_eq!(last, index[4]);
    assert!(verdict
        .anomalies
        .iter()
        .any(|a| a.kind == AnomalyKind::StaleRead));
}

#[test]
fn cas_on_a_stale_value_is_invalid() {
    let (verdict, index) = check(
        "p1 write x 1   0  10 ok
         p1 write x 2   20 30 ok
         p2 cas   x 1,3 40 50 ok",
    );
    let (ops, last, standalone) = window_of(&verdict, "x");
    assert_eq!(
        (ops, last, standalone),
        (vec![index[1], index[2]], index[2], true)
    );
}

#[test]
fn info_write_seen_then_missing_is_invalid() {
    // The unknown write of 5 was seen, so it happened; the register cannot be empty again.
    let (verdict, index) = check(
        "p1 write x 5   0  -  info
         p2 read  x 5   10 20 ok
         p2 read  x nil 30 40 ok",
    );
    let (_, last, _) = window_of(&verdict, "x");
    assert_eq!(last, index[2]);
}

#[test]
fn verdict_serializes_to_json() {
    let (verdict, _) = check(
        "p1 write x 1 0  10 ok
         p2 read  x 2 20 30 ok",
    );
    let json = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["keys"]["x"]["outcome"], "not_linearizable");
    assert_eq!(json["stats"]["ops"], 2);
}

#[test]
fn a_later_unknown_write_does_not_hide_a_lost_write() {
    // The timed-out write of 1 began after the read completed, so it cannot be where the
    // read's 1 came from: the acknowledged write of 2 is still lost.
    let (verdict, index) = check(
        "p1 write x 1 0   10  ok
         p1 write x 2 20  30  ok
         p2 read  x 1 40  50  ok
         p3 write x 1 100 -   info",
    );
    let (_, last, _) = window_of(&verdict, "x");
    assert_eq!(last, index[2]);
    let lost = verdict
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::LostWrite);
    assert!(lost.is_some(), "{verdict}");
}

#[test]
fn an_undecided_key_makes_the_verdict_invalid() {
    // Two concurrent writes and a read that needs them in one order: with a budget of one
    // memoised state the search cannot decide, and an unproven history is not valid.
    let (history, _) = parse(
        "p1 write x 1 0  100 ok
         p2 write x 2 0  100 ok
         p3 read  x 2 10 200 ok",
    );
    let tight = Limits {
        states_max: 1,
        window_states_max: 1,
    };
    let verdict = check_register_with(&history, &tight);
    assert_eq!(verdict.keys["x"].outcome, Outcome::Unknown, "{verdict}");
    assert!(!verdict.valid);
    assert!(
        check_register(&history).valid,
        "with the default limits it is decided"
    );
}

#[test]
fn malformed_records_are_reported_not_trusted() {
    // In record order: a completion stamped before its invoke, then a completion nobody
    // invoked.
    let record = |index, process, kind, time_ns| Op {
        index,
        process,
        kind,
        f: F::Write,
        key: Some("x".to_string()),
        value: Value::Int(1),
        time_ns,
    };
    let history = History {
        ops: vec![
            record(0, 1, OpType::Invoke, 50),
            record(1, 1, OpType::Ok, 40),
            record(2, 9, OpType::Ok, 60),
        ],
    };
    let verdict = check_register(&history);
    let malformed: Vec<&str> = verdict
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::MalformedHistory)
        .map(|a| a.explanation.as_str())
        .collect();
    assert_eq!(
        malformed,
        vec![
            "record 1: a completion stamped before its invoke",
            "record 2: a completion without an invoke"
        ]
    );
    assert!(!verdict.valid);
}
