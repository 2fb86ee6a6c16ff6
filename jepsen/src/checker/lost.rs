//! Named anomalies in a register history: lost acknowledged writes and stale (resurrected)
//! reads. Every one of them is also a linearizability violation; naming them just tells an
//! operator *what* went wrong in words, with the three operations that prove it.
//!
//! The one rule (sound: it never flags a linearizable history). For a key and a read R:
//! - `settled(a, R)`: the latest completion among operations that write value `a` (a write
//!   of `a` or a cas to `a`, `ok` or unknown; an unknown one never completes, so then
//!   +infinity) and were invoked before R completed; only those can be where R's `a` came
//!   from. For `a = null` (missing) it is the start of the run: nothing writes null, the
//!   workload never deletes.
//! - A *witness* X is an `ok` operation that saw or left a value `b`: a read of `b`, a write
//!   of `b`, a cas to `b`. At X's linearization point, inside `[X.invoke, X.complete]`, the
//!   register held `b`.
//! - Anomaly: R returned `a != b`, R was invoked after X completed, and X was invoked after
//!   `settled(a, R)`. Then R's point follows X's, so the write of `a` that R saw sits between
//!   them; but every write of `a` that could precede R completed before X began. Impossible.
//!
//! If X is a write or cas, the acknowledged write was lost (R, often the final read after
//! healing, sees an older value): `LostWrite`. If X is a read, an old value came back after a
//! newer one was seen: `StaleRead`. At most `REPORTED_MAX` per key and kind are reported.
//!
//! Called by `register` on each key's effective operations (fail ops and unknown reads
//! already dropped). Does no IO.

use std::collections::HashMap;

use super::register::{RegF, RegOp};
use super::{Anomaly, AnomalyKind};

/// Anomalies reported per key and kind; the first ones (by read invoke time) are the
/// clearest, the rest are usually echoes.
const REPORTED_MAX: usize = 3;

/// The best witness so far: latest-invoked op among those completed before a read began.
#[derive(Clone, Copy)]
struct Witness {
    call_ns: u64,
    value: Option<i64>,
    op: usize,
}

/// Every writer of each value, by invoke time, with the latest completion so far.
struct Writers {
    /// value → (invoke time, 1 + latest completion among writers so far, that writer).
    by_value: HashMap<i64, Vec<(u64, u64, usize)>>,
}

impl Writers {
    fn new(ops: &[RegOp]) -> Writers {
        let mut by_value: HashMap<i64, Vec<(u64, u64, usize)>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(v) = op.written() {
                let end = op.return_ns.map_or(u64::MAX, |end| end.saturating_add(1));
                by_value.entry(v).or_default().push((op.call_ns, end, i));
            }
        }
        for writers in by_value.values_mut() {
            writers.sort_unstable();
            // Turn each entry's end into the running maximum, remembering whose it is.
            for n in 1..writers.len() {
                if writers[n - 1].1 > writers[n].1 {
                    (writers[n].1, writers[n].2) = (writers[n - 1].1, writers[n - 1].2);
                }
            }
        }
        Writers { by_value }
    }

    /// `settled(a, R) + 1` for a read completed at `read_end_ns` and the writer it comes
    /// from; `(0, None)` for null; `None` if nothing wrote `a` before the read completed.
    fn settled(&self, a: Option<i64>, read_end_ns: u64) -> Option<(u64, Option<usize>)> {
        let Some(v) = a else { return Some((0, None)) };
        let writers = self.by_value.get(&v)?;
        // Invoked at the read's completion instant counts as concurrent: included.
        let before = writers.partition_point(|&(call_ns, _, _)| call_ns <= read_end_ns);
        let &(_, end, writer) = writers.get(before.checked_sub(1)?)?;
        Some((end, Some(writer)))
    }
}

/// The value an `ok` op saw or left; `None` for unknown-outcome ops (no witnesses).
fn left_value(op: &RegOp) -> Option<Option<i64>> {
    op.return_ns?;
    Some(match op.f {
        RegF::Read(v) => v,
        RegF::Write(v) | RegF::Cas(_, v) => Some(v),
    })
}

/// Finds lost writes and stale reads on one key (see the module docs for the rule).
pub(crate) fn find(key: &str, ops: &[RegOp]) -> Vec<Anomaly> {
    let writers = Writers::new(ops);
    let mut by_return: Vec<usize> = (0..ops.len())
        .filter(|&i| left_value(&ops[i]).is_some())
        .collect();
    by_return.sort_by_key(|&i| ops[i].return_ns);
    let mut reads: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].f, RegF::Read(_)) && ops[i].return_ns.is_some())
        .collect();
    reads.sort_by_key(|&i| ops[i].call_ns);

    let mut best: Option<Witness> = None;
    let mut runner_up: Option<Witness> = None;
    let mut added = 0;
    let mut anomalies = Vec::new();
    let mut reported: HashMap<AnomalyKind, usize> = HashMap::new();
    for &read in &reads {
        let read_op = &ops[read];
        while added < by_return.len() && ops[by_return[added]].return_ns < Some(read_op.call_ns) {
            let op = by_return[added];
            let value = left_value(&ops[op]).expect("only ok ops are witnesses");
            offer(
                &mut best,
                &mut runner_up,
                Witness {
                    call_ns: ops[op].call_ns,
                    value,
                    op,
                },
            );
            added += 1;
        }
        let RegF::Read(seen) = read_op.f else {
            unreachable!("reads only")
        };
        let witness = match best {
            Some(w) if w.value != seen => Some(w),
            _ => runner_up,
        };
        let Some(witness) = witness else { continue };
        let read_end_ns = read_op.return_ns.expect("only ok reads are checked");
        // A value nobody wrote before the read is the search's business, not a lost write.
        let Some((settled_ns, writer)) = writers.settled(seen, read_end_ns) else {
            continue;
        };
        // `settled_ns` holds the end + 1, so `>=` means "invoked strictly after".
        if witness.call_ns < settled_ns {
            continue;
        }
        let kind = match ops[witness.op].f {
            RegF::Read(_) => AnomalyKind::StaleRead,
            _ => AnomalyKind::LostWrite,
        };
        let count = reported.entry(kind).or_insert(0);
        if *count >= REPORTED_MAX {
            continue;
        }
        *count += 1;
        anomalies.push(describe(key, kind, ops, witness.op, read, writer));
    }
    anomalies
}

/// Keeps the latest-invoked witness, and the latest-invoked one with a different value.
fn offer(best: &mut Option<Witness>, runner_up: &mut Option<Witness>, new: Witness) {
    match *best {
        None => *best = Some(new),
        Some(current) if current.value == new.value => {
            if new.call_ns > current.call_ns {
                *best = Some(new);
            }
        }
        Some(current) if new.call_ns > current.call_ns => {
            *runner_up = Some(current);
            *best = Some(new);
        }
        Some(_) => {
            if runner_up.is_none_or(|r| new.call_ns > r.call_ns) {
                *runner_up = Some(new);
            }
        }
    }
}

fn describe(
    key: &str,
    kind: AnomalyKind,
    ops: &[RegOp],
    witness: usize,
    read: usize,
    writer: Option<usize>,
) -> Anomaly {
    let (w, r) = (&ops[witness], &ops[read]);
    let shown = |v: Option<i64>| v.map_or("null".to_string(), |v| v.to_string());
    let RegF::Read(seen) = r.f else {
        unreachable!("reads only")
    };
    let what = match kind {
        AnomalyKind::LostWrite => format!("acknowledged write #{} was lost", w.index),
        _ => format!(
            "value {} came back after read #{} saw a newer one",
            shown(seen),
            w.index
        ),
    };
    let explanation = format!(
        "{what}: read #{} returned {}, but every write of it that could precede that read \
         completed before #{} began",
        r.index,
        shown(seen),
        w.index
    );
    let mut shown_ops: Vec<&RegOp> = writer.map(|i| &ops[i]).into_iter().collect();
    shown_ops.extend([w, r]);
    Anomaly {
        kind,
        key: Some(key.to_string()),
        explanation,
        ops: shown_ops.into_iter().map(RegOp::summary).collect(),
    }
}
