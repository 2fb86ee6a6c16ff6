//! The append checker ("Elle-lite") on hand-written transaction histories: serial and
//! concurrent serializable ones pass; an incompatible list order, a lost append, a phantom
//! element and write skew (an rw-rw cycle) fail with the named anomaly. Seeded generated
//! histories (replay one with `SEED=n`) must pass, and corrupted reads must mostly fail.

mod checker_support;

use checker_support::{corrupt_a_list_read, generate_txns, parse_txns, seeds, TxnShape};
use jepsen::checker::{check_append, AnomalyKind, Verdict};

fn check(text: &str) -> (Verdict, Vec<u64>) {
    let (history, index) = parse_txns(text);
    let verdict = check_append(&history);
    println!("{verdict}");
    (verdict, index)
}

fn kinds(verdict: &Verdict) -> Vec<AnomalyKind> {
    verdict.anomalies.iter().map(|a| a.kind).collect()
}

#[test]
fn serial_appends_and_reads_are_valid() {
    let (verdict, _) = check(
        "p1 0  10 ok append:x:1
         p2 20 30 ok r:x:1 append:x:2 r:y:nil
         p1 40 50 ok r:x:1,2 append:y:3
         p3 60 70 ok r:x:1,2 r:y:3",
    );
    assert!(verdict.valid, "{verdict}");
    assert_eq!(verdict.stats.ok, 4);
}

#[test]
fn concurrent_txns_and_an_info_append_seen_later_are_valid() {
    let (verdict, _) = check(
        "p1 0  100 ok append:x:1 r:y:
         p2 0  100 ok append:y:2 r:x:1
         p3 10 -   info append:x:3
         p4 200 210 ok r:x:1,3 r:y:2",
    );
    assert!(verdict.valid, "{verdict}");
}

#[test]
fn reads_that_disagree_on_order_are_invalid() {
    let (verdict, _) = check(
        "p1 0  100 ok append:x:1
         p2 0  100 ok append:x:2
         p3 10 20  ok r:x:1,2
         p4 30 40  ok r:x:2",
    );
    assert!(
        kinds(&verdict).contains(&AnomalyKind::IncompatibleOrder),
        "{verdict}"
    );
}

#[test]
fn a_read_missing_an_acknowledged_append_is_invalid() {
    let (verdict, index) = check(
        "p1 0  10 ok append:x:1
         p2 20 30 ok r:x:",
    );
    let lost = verdict
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::LostAppend);
    let lost = lost.unwrap_or_else(|| panic!("a lost append: {verdict}"));
    let shown: Vec<u64> = lost.ops.iter().map(|op| op.index).collect();
    assert_eq!(shown, vec![index[0], index[1]]);
}

#[test]
fn a_phantom_element_is_invalid() {
    let (verdict, _) = check("p1 0 10 ok r:x:9");
    assert_eq!(kinds(&verdict), vec![AnomalyKind::DuplicateOrPhantom]);
}

#[test]
fn write_skew_is_a_dependency_cycle() {
    // T1 reads x empty and appends to y; T2 reads y empty and appends to x. Each read the
    // state before the other's append: T1 -rw-> T2 -rw-> T1.
    let (verdict, index) = check(
        "p1 0   100 ok r:x: append:y:1
         p2 0   100 ok r:y: append:x:2
         p3 200 210 ok r:x:2 r:y:1",
    );
    assert_eq!(
        kinds(&verdict),
        vec![AnomalyKind::DependencyCycle],
        "{verdict}"
    );
    let mut shown: Vec<u64> = verdict.anomalies[0].ops.iter().map(|op| op.index).collect();
    shown.sort();
    assert_eq!(shown, vec![index[0], index[1]]);
}

const TXNS: TxnShape = TxnShape {
    keys: 3,
    processes: 5,
    txns_per_process: 30,
    info_chance: 0.05,
};

/// Histories from a simulated strictly serializable store must always pass.
#[test]
fn generated_serializable_histories_pass() {
    for seed in seeds(200) {
        let history = generate_txns(seed, TXNS);
        let verdict = check_append(&history);
        assert!(
            verdict.valid,
            "seed {seed}: a serializable history was rejected:\n{verdict}"
        );
    }
}

/// A read that loses its last element or shows two elements swapped must mostly fail (a
/// truncated read can still be explained when nothing orders it after that append).
#[test]
fn corrupted_list_reads_usually_fail() {
    let (mut invalid, mut total) = (0, 0);
    for seed in seeds(200) {
        let mut history = generate_txns(seed, TXNS);
        if !corrupt_a_list_read(&mut history, seed) {
            continue;
        }
        total += 1;
        if !check_append(&history).valid {
            invalid += 1;
        }
    }
    println!("{invalid} of {total} corrupted histories judged invalid");
    if total > 20 {
        assert!(
            invalid * 10 >= total * 6,
            "only {invalid} of {total} corrupted histories failed"
        );
    }
}

#[test]
fn an_order_only_real_time_forbids_is_a_cycle() {
    // Serializable as T2, T3, T1, but T1 completed before T2 began: T3 saw T2's append and
    // not T1's, so no order respects real time. T1 -rt-> T2 -wr-> T3 -rw-> T1.
    let (verdict, index) = check(
        "p1 0  10  ok append:x:1
         p2 20 30  ok append:y:2
         p3 5  100 ok r:x: r:y:2",
    );
    assert_eq!(
        kinds(&verdict),
        vec![AnomalyKind::DependencyCycle],
        "{verdict}"
    );
    assert!(verdict.anomalies[0].explanation.contains("Rt"), "{verdict}");
    let mut shown: Vec<u64> = verdict.anomalies[0].ops.iter().map(|op| op.index).collect();
    shown.sort();
    let mut expected = index.clone();
    expected.sort();
    assert_eq!(shown, expected);
}
