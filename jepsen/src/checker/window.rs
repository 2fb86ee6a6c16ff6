//! Shrinks a non-linearizable key history to the smallest window that cannot be ordered.
//!
//! Two steps, each sound on its own:
//! 1. **Shortest failing prefix.** Number the `ok` operations by completion time. Prefix `k`
//!    is the history as it stood when the k-th one completed: operations invoked by then,
//!    those not yet complete turned into unknown-outcome ones (reads among them dropped).
//!    Linearizability is prefix-closed (a linearization of prefix k+1 gives one of prefix k),
//!    so failing is monotone in `k` and a binary search finds the smallest failing `k`. Its
//!    last operation is the one "that cannot be ordered".
//! 2. **Left cut.** Within that prefix, pick a cut time `c` and keep: every operation
//!    invoked at or after `c`; every unknown-outcome one; and every write or cas that
//!    straddles `c` (invoked before, completed after), demoted to unknown outcome. Dropped:
//!    everything completed before `c`, and reads straddling it. Take any linearization of the
//!    prefix; after the last dropped op the register holds *some* value the history wrote
//!    (or nothing), every kept op invoked at or after `c` comes later (real time), and the
//!    kept ones placed earlier are unknown-outcome ones, which may be left out; dropping
//!    reads changes no state. So if the window has no linearization from any such value
//!    (`State::Any`), neither has the prefix: the window is a standalone witness, e.g.
//!    `write 2; read → 1` for a stale read. Cuts are tried at invoke times of completed ops,
//!    latest first, up to `CUTS_TRIED_MAX`.
//!
//! If no cut works (the evidence lies further back), the window is the failing prefix's
//! tail: the last operation, everything overlapping it and the few operations completed just
//! before it (`standalone = false`).
//!
//! Called by `register` only for keys already known to fail; does no IO.

use std::collections::{HashMap, HashSet};

use super::linearizable::{self, SearchOutcome, Start, State};
use super::register::{prune_unobserved, Limits, RegF, RegOp};
use super::Window;

/// Cuts tried (latest first) before falling back to the prefix's tail.
const CUTS_TRIED_MAX: usize = 64;
/// Operations completed just before the last one, shown for context in a fallback window.
const CONTEXT_BEFORE: usize = 6;
/// Operations shown at most in a fallback window.
const FALLBACK_OPS_MAX: usize = 40;

/// The window of a key whose full search returned `NotLinearizable`.
pub(crate) fn find(ops: &[RegOp], candidates: &HashSet<Option<i64>>, limits: &Limits) -> Window {
    let mut completed: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].return_ns.is_some())
        .collect();
    completed.sort_by_key(|&i| (ops[i].return_ns, ops[i].index));
    let fails = |k: usize| {
        let prefix = prune_unobserved(&prefix(ops, &completed, k));
        let start = Start {
            state: State::Value(None),
            candidates,
        };
        // A prefix is no harder than the whole key, which was decided within `states_max`;
        // should one still come back undecided, it counts as failing (the prefix found may
        // then be too short, but a standalone window is checked on its own anyway).
        linearizable::check(&prefix, &start, limits.states_max).outcome
            != SearchOutcome::Linearizable
    };
    // The whole history fails; find the smallest failing k in 1..=len.
    let (mut low, mut high) = (1, completed.len());
    while low < high {
        let middle = (low + high) / 2;
        if fails(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let k = low;
    let prefix = prefix(ops, &completed, k);
    let last = &ops[completed[k - 1]];
    let originals: HashMap<u64, &RegOp> = ops.iter().map(|op| (op.index, op)).collect();
    let (standalone, mut shown) = match standalone_window(&prefix, candidates, limits) {
        Some(window) => (true, window),
        None => (false, context(&prefix, last)),
    };
    shown.sort_by_key(|op| (op.call_ns, op.index));
    Window {
        prefix_ok_ops: k as u64,
        standalone,
        ops: shown
            .iter()
            .map(|op| originals[&op.index].summary())
            .collect(),
        last: last.index,
    }
}

/// The history as it stood when the k-th `ok` operation (by completion) completed.
fn prefix(ops: &[RegOp], completed: &[usize], k: usize) -> Vec<RegOp> {
    let end_ns = ops[completed[k - 1]]
        .return_ns
        .expect("completed ops have an end");
    let done: HashSet<usize> = completed[..k].iter().copied().collect();
    let mut kept = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if op.call_ns > end_ns || (op.return_ns.is_some() && !done.contains(&i) && is_read(op)) {
            continue;
        }
        let mut op = op.clone();
        if !done.contains(&i) {
            op.return_ns = None;
        }
        kept.push(op);
    }
    kept
}

fn is_read(op: &RegOp) -> bool {
    matches!(op.f, RegF::Read(_))
}

/// The window of `prefix` from cut time `cut_ns` (see the module docs).
fn window_from(prefix: &[RegOp], cut_ns: u64) -> Vec<RegOp> {
    let mut window = Vec::new();
    for op in prefix {
        if op.call_ns >= cut_ns || op.return_ns.is_none() {
            window.push(op.clone());
        } else if op.return_ns.is_some_and(|end| end >= cut_ns) && op.written().is_some() {
            // A write straddling the cut: it may have taken effect on either side.
            window.push(RegOp {
                return_ns: None,
                ..op.clone()
            });
        }
    }
    prune_unobserved(&window)
}

/// The latest cut of `prefix` whose window fails from any starting value, if one is found.
fn standalone_window(
    prefix: &[RegOp],
    candidates: &HashSet<Option<i64>>,
    limits: &Limits,
) -> Option<Vec<RegOp>> {
    let mut cuts: Vec<u64> = prefix
        .iter()
        .filter(|op| op.return_ns.is_some())
        .map(|op| op.call_ns)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    // The earliest cut is the whole prefix again; it adds nothing over the prefix itself.
    for &cut_ns in cuts.iter().skip(1).rev().take(CUTS_TRIED_MAX) {
        let window = window_from(prefix, cut_ns);
        let start = Start {
            state: State::Any,
            candidates,
        };
        let outcome = linearizable::check(&window, &start, limits.window_states_max).outcome;
        if outcome == SearchOutcome::NotLinearizable {
            return Some(window);
        }
    }
    None
}

/// The fallback window: `last`, the completed ops overlapping it, a few completed just
/// before it, and the unknown-outcome ops that matter: those invoked since the earliest shown
/// op (still in flight when `last` completed) and older ones whose value a shown op needs.
fn context(prefix: &[RegOp], last: &RegOp) -> Vec<RegOp> {
    let last_return_ns = last.return_ns.expect("the last op completed");
    let overlaps = |op: &RegOp| {
        op.call_ns <= last_return_ns && op.return_ns.is_some_and(|end| end >= last.call_ns)
    };
    let mut shown: Vec<RegOp> = prefix.iter().filter(|op| overlaps(op)).cloned().collect();
    // Nearest first, so the cap keeps what matters most.
    shown.sort_by_key(|op| last.call_ns.abs_diff(op.call_ns));
    shown.truncate(FALLBACK_OPS_MAX);
    let mut before: Vec<&RegOp> = prefix
        .iter()
        .filter(|op| op.return_ns.is_some_and(|end| end < last.call_ns))
        .collect();
    before.sort_by_key(|op| std::cmp::Reverse(op.return_ns));
    shown.extend(before.into_iter().take(CONTEXT_BEFORE).cloned());
    let since_ns = shown
        .iter()
        .map(|op| op.call_ns)
        .min()
        .unwrap_or(last.call_ns);
    let needed: HashSet<i64> = shown.iter().filter_map(|op| op.f.needs()).collect();
    let matters = |op: &&RegOp| {
        op.return_ns.is_none()
            && (op.call_ns >= since_ns || op.written().is_some_and(|v| needed.contains(&v)))
    };
    let unknown: Vec<RegOp> = prefix.iter().filter(matters).cloned().collect();
    shown.extend(unknown.into_iter().rev().take(FALLBACK_OPS_MAX));
    shown
}
