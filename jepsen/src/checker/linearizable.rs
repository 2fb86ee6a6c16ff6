//! The linearizability search for one register: Wing & Gong's algorithm with Lowe's
//! memoisation, in the shape Porcupine made popular.
//!
//! The history is flattened into a doubly linked list of call and return entries sorted by
//! time (at equal times calls come first, so touching intervals count as concurrent: the
//! conservative choice). The search walks the list from its head: at a call entry it tries to
//! *linearize* that operation now (the register model must accept it); if the model accepts
//! and the pair (set of linearized operations, model state) has not been seen before, the
//! operation's call and return entries are *lifted* out of the list and the walk restarts at
//! the head. Reaching a return entry means that operation should already have been
//! linearized, so the search backtracks: it pops the last linearized operation, puts its
//! entries back (in reverse order, like dancing links) and tries the next call after it.
//!
//! Operations whose outcome is unknown (`info`, or never completed) have no return entry:
//! their end is +infinity. The search never *has* to linearize them: a history is accepted
//! as soon as every `ok` operation is linearized, and the unknown ones left over are "applied
//! after everything" which, for a register, is the same as "never applied". Unknown *writes*
//! are not even in the list: they are linearized only as helpers, immediately before an
//! operation that needs their value (see `Search::helper_for`), so a run with many timeouts
//! does not double the search space with every one of them.
//!
//! The memo stores a 128-bit Zobrist fingerprint of the linearized set instead of the bitset
//! itself (16 bytes per entry instead of n/8): two different sets collide with probability
//! about 2^-128 per pair, far below any hardware error rate, and a collision could only make
//! the search skip a branch (a false "not linearizable"), never accept a bad history.
//!
//! Worked example, `w1` = write 1 at [0,10], `r1` = read→1 at [5,20], from the empty state:
//!
//! ```text
//! list: call w1, call r1, ret w1, ret r1
//! head=call w1: write 1 accepted, state 1, lift w1     list: call r1, ret r1
//! head=call r1: read 1 accepted (state is 1), lift r1  list: (empty) → every ok op done
//! ```
//!
//! This module knows nothing about histories or keys; `register` builds the operations and
//! `window` calls it again on prefixes and windows of a failing history.

use std::collections::{HashMap, HashSet};

use super::register::{RegF, RegOp};

/// The register's state as the search sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum State {
    /// Not known yet: the window starts in the middle of a history, so the register may hold
    /// any value the history ever wrote (or nothing). The first operation pins it down.
    Any,
    /// The register holds this value (`None`: the key is missing).
    Value(Option<i64>),
}

/// Where the search starts.
pub(crate) struct Start<'a> {
    /// The initial state: `Value(None)` for a whole history, `Any` for a window.
    pub state: State,
    /// The values `Any` may stand for: every value written in the key's history, and `None`.
    pub candidates: &'a HashSet<Option<i64>>,
}

/// What the search concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SearchOutcome {
    /// Some order of the operations respects real time and the register's rules.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// The search gave up after `states_max` memoised states.
    Unknown,
}

/// The search's answer and its cost.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SearchResult {
    /// The verdict.
    pub outcome: SearchOutcome,
    /// Distinct (linearized set, state) pairs visited.
    pub states_explored: u64,
}

/// Applies one operation to the register model; `None` if the model refuses it.
///
/// Operations reaching the search are all effective: `ok` ones happened as recorded, and
/// unknown ones are only linearized where they take effect (an unknown cas whose compare
/// would fail is simply left unlinearized, i.e. "never applied").
pub(crate) fn step(state: State, f: RegF, candidates: &HashSet<Option<i64>>) -> Option<State> {
    match (f, state) {
        (RegF::Write(v), _) => Some(State::Value(Some(v))),
        (RegF::Read(v), State::Value(held)) => (held == v).then_some(state),
        (RegF::Read(v), State::Any) => candidates.contains(&v).then_some(State::Value(v)),
        (RegF::Cas(expected, new), State::Value(held)) => {
            (held == Some(expected)).then_some(State::Value(Some(new)))
        }
        (RegF::Cas(expected, new), State::Any) => candidates
            .contains(&Some(expected))
            .then_some(State::Value(Some(new))),
    }
}

/// Marks the end of the linked list.
const NIL: usize = usize::MAX;

/// One call or return event in the flattened history.
#[derive(Clone, Copy, Debug)]
struct Entry {
    op: usize,
    is_call: bool,
}

/// The flattened history as a doubly linked list; `head` is a sentinel before the first entry.
struct EntryList {
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each operation, the index of its call entry and of its return entry (if any).
    call_of: Vec<usize>,
    return_of: Vec<usize>,
    head: usize,
}

impl EntryList {
    /// The entries of every op except those `skip` selects (they never enter the list).
    fn new(ops: &[RegOp], skip: fn(&RegOp) -> bool) -> EntryList {
        let mut timed: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate().filter(|(_, op)| !skip(op)) {
            // Calls sort before returns at the same instant: `!is_call` is false for calls.
            timed.push((op.call_ns, false, i));
            if let Some(return_ns) = op.return_ns {
                assert!(
                    return_ns >= op.call_ns,
                    "op {i} returns before its call: {op:?}"
                );
                timed.push((return_ns, true, i));
            }
        }
        timed.sort_unstable();
        let count = timed.len();
        let head = count;
        let mut list = EntryList {
            entries: Vec::with_capacity(count),
            next: vec![NIL; count + 1],
            prev: vec![NIL; count + 1],
            call_of: vec![NIL; ops.len()],
            return_of: vec![NIL; ops.len()],
            head,
        };
        for (position, &(_, is_return, op)) in timed.iter().enumerate() {
            list.entries.push(Entry {
                op,
                is_call: !is_return,
            });
            if is_return {
                list.return_of[op] = position;
            } else {
                list.call_of[op] = position;
            }
            list.prev[position] = if position == 0 { head } else { position - 1 };
            list.next[position] = if position + 1 < count {
                position + 1
            } else {
                NIL
            };
        }
        list.next[head] = if count > 0 { 0 } else { NIL };
        list
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = entry;
        if next != NIL {
            self.prev[next] = entry;
        }
    }

    /// Removes an operation's entries; `unlift` must undo lifts in reverse order.
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if self.return_of[op] != NIL {
            self.unlink(self.return_of[op]);
        }
    }

    fn unlift(&mut self, op: usize) {
        if self.return_of[op] != NIL {
            self.relink(self.return_of[op]);
        }
        self.relink(self.call_of[op]);
    }
}

/// A deterministic 128-bit key per operation for the Zobrist fingerprint (splitmix64).
fn zobrist_key(op: usize) -> u128 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let seed = (op as u64).wrapping_mul(2).wrapping_add(1);
    let high = mix(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let low = mix(seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (u128::from(high) << 64) | u128::from(low)
}

/// One linearization step on the search stack.
struct Frame {
    /// The operation linearized.
    op: usize,
    /// An unknown-outcome write linearized just before `op` to give it the value it needs.
    helper: Option<usize>,
    /// The state before the step.
    before: State,
    /// A read that matched the state as it was: no other choice here can do better (see
    /// `Search::run`), so backtracking skips the frame's alternatives.
    forced: bool,
}

/// What trying to linearize one operation did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tried {
    /// Linearized: the walk restarts at the head.
    Pushed,
    /// Not possible, or already explored: try the next call.
    Refused,
    /// A read that matches the state was already explored from here and failed: this whole
    /// configuration fails, backtrack.
    Dead,
}

/// The search's mutable state; see the module docs for the algorithm.
struct Search<'a> {
    ops: &'a [RegOp],
    candidates: &'a HashSet<Option<i64>>,
    list: EntryList,
    keys: Vec<u128>,
    /// Unknown-outcome writes by value, by invoke time; never in `list` (see `helper_for`).
    lazy_writes: HashMap<i64, Vec<usize>>,
    linearized: Vec<bool>,
    memo: HashSet<(u128, State)>,
    stack: Vec<Frame>,
    state: State,
    fingerprint: u128,
    ok_left: usize,
}

/// Whether `op` is an unknown-outcome write, which the search only linearizes on demand.
fn is_lazy(op: &RegOp) -> bool {
    op.return_ns.is_none() && matches!(op.f, RegF::Write(_))
}

impl<'a> Search<'a> {
    fn new(ops: &'a [RegOp], start: &Start<'a>) -> Search<'a> {
        let mut lazy_writes: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let (true, RegF::Write(v)) = (is_lazy(op), op.f) {
                lazy_writes.entry(v).or_default().push(i);
            }
        }
        for writes in lazy_writes.values_mut() {
            writes.sort_by_key(|&i| ops[i].call_ns);
        }
        Search {
            ops,
            candidates: start.candidates,
            list: EntryList::new(ops, is_lazy),
            keys: (0..ops.len()).map(zobrist_key).collect(),
            lazy_writes,
            linearized: vec![false; ops.len()],
            memo: HashSet::new(),
            stack: Vec::new(),
            state: start.state,
            fingerprint: 0,
            ok_left: ops.iter().filter(|op| op.return_ns.is_some()).count(),
        }
    }

    /// Tries to linearize `op` now (after a helper write if it needs one).
    fn try_linearize(&mut self, op: usize) -> Tried {
        let f = self.ops[op].f;
        if let Some(after) = step(self.state, f, self.candidates) {
            let forced = matches!((f, self.state), (RegF::Read(_), State::Value(_)));
            return match (self.push(op, None, after, forced), forced) {
                (true, _) => Tried::Pushed,
                (false, true) => Tried::Dead,
                (false, false) => Tried::Refused,
            };
        }
        let Some(helper) = f.needs().and_then(|v| self.helper_for(v)) else {
            return Tried::Refused;
        };
        let helped = State::Value(Some(f.needs().expect("a helper implies a need")));
        match step(helped, f, self.candidates) {
            Some(after) if self.push(op, Some(helper), after, false) => Tried::Pushed,
            _ => Tried::Refused,
        }
    }

    /// An unknown-outcome write of `v` that may take effect now, if one is left.
    ///
    /// Such writes are never tried on their own: in any linearization, an unknown write not
    /// immediately followed by an op that needs its value can be dropped (it is overwritten
    /// or never seen), so it suffices to place them right before an op that needs them.
    /// All unused ones invoked before now are interchangeable, so the first one is taken.
    fn helper_for(&self, v: i64) -> Option<usize> {
        let now_ns = self.first_return_ns()?;
        let writes = self.lazy_writes.get(&v)?;
        writes
            .iter()
            .copied()
            .take_while(|&w| self.ops[w].call_ns <= now_ns)
            .find(|&w| !self.linearized[w])
    }

    /// The time of the earliest return not yet passed: ops invoked by then may go next.
    fn first_return_ns(&self) -> Option<u64> {
        let mut cursor = self.list.next[self.list.head];
        while cursor != NIL {
            let entry = self.list.entries[cursor];
            if !entry.is_call {
                return self.ops[entry.op].return_ns;
            }
            cursor = self.list.next[cursor];
        }
        None
    }

    fn push(&mut self, op: usize, helper: Option<usize>, after: State, forced: bool) -> bool {
        let fingerprint = self.fingerprint ^ self.keys[op] ^ helper.map_or(0, |h| self.keys[h]);
        if !self.memo.insert((fingerprint, after)) {
            return false;
        }
        self.stack.push(Frame {
            op,
            helper,
            before: self.state,
            forced,
        });
        self.state = after;
        self.fingerprint = fingerprint;
        self.list.lift(op);
        self.linearized[op] = true;
        if let Some(h) = helper {
            self.linearized[h] = true;
        }
        self.ok_left -= usize::from(self.ops[op].return_ns.is_some());
        true
    }

    /// Undoes the last step; returns the op it linearized and whether it was forced.
    fn pop(&mut self) -> Option<(usize, bool)> {
        let frame = self.stack.pop()?;
        self.list.unlift(frame.op);
        self.linearized[frame.op] = false;
        let mut fingerprint = self.fingerprint ^ self.keys[frame.op];
        if let Some(h) = frame.helper {
            self.linearized[h] = false;
            fingerprint ^= self.keys[h];
        }
        self.fingerprint = fingerprint;
        self.state = frame.before;
        self.ok_left += usize::from(self.ops[frame.op].return_ns.is_some());
        Some((frame.op, frame.forced))
    }

    /// The stack, the linearized flags, the fingerprint, the count of `ok` ops left and the
    /// entry list all describe the same set. O(n): run once per search, at its end.
    fn check_invariants(&self) {
        let mut on_stack = vec![false; self.ops.len()];
        let mut fingerprint = 0;
        for frame in &self.stack {
            for op in std::iter::once(frame.op).chain(frame.helper) {
                assert!(!on_stack[op], "op {op} linearized twice");
                on_stack[op] = true;
                fingerprint ^= self.keys[op];
            }
        }
        assert_eq!(
            on_stack, self.linearized,
            "stack and linearized flags disagree"
        );
        assert_eq!(
            fingerprint, self.fingerprint,
            "fingerprint out of step with the stack"
        );
        let ok_left = (0..self.ops.len())
            .filter(|&i| !on_stack[i] && self.ops[i].return_ns.is_some())
            .count();
        assert_eq!(
            ok_left, self.ok_left,
            "ok ops left out of step with the stack"
        );
        let mut cursor = self.list.next[self.list.head];
        while cursor != NIL {
            let op = self.list.entries[cursor].op;
            assert!(!on_stack[op], "linearized op {op} still in the entry list");
            cursor = self.list.next[cursor];
        }
    }

    /// The walk. One pruning beyond Porcupine's: a read that matches the current state is
    /// *forced*. If any linearization exists from here, one exists with that read next (a
    /// read changes nothing, and every op that had to precede it already has), so when the
    /// search comes back to a forced frame, the configuration before it has failed too and
    /// the frame's alternatives are skipped. This keeps concurrent reads of one value from
    /// multiplying the states (2^k subsets of k reads).
    fn run(&mut self, states_max: u64) -> SearchOutcome {
        let mut cursor = self.list.next[self.list.head];
        loop {
            if self.ok_left == 0 {
                return SearchOutcome::Linearizable;
            }
            if self.memo.len() as u64 >= states_max {
                return SearchOutcome::Unknown;
            }
            if cursor != NIL && self.list.entries[cursor].is_call {
                let op = self.list.entries[cursor].op;
                match self.try_linearize(op) {
                    Tried::Pushed => {
                        cursor = self.list.next[self.list.head];
                        continue;
                    }
                    Tried::Refused => {
                        cursor = self.list.next[cursor];
                        continue;
                    }
                    Tried::Dead => {}
                }
            }
            // A return entry, the end of the list or a dead configuration: backtrack past
            // every forced frame to the last real choice, and try the call after it.
            loop {
                let Some((op, forced)) = self.pop() else {
                    return SearchOutcome::NotLinearizable;
                };
                if !forced {
                    cursor = self.list.next[self.list.call_of[op]];
                    break;
                }
            }
        }
    }
}

/// Decides whether `ops` (one key's operations) are linearizable from `start`.
///
/// Gives up with `Unknown` once `states_max` distinct states have been memoised: the
/// problem is NP-complete, and a pathological history must not hang a CI run.
pub(crate) fn check(ops: &[RegOp], start: &Start, states_max: u64) -> SearchResult {
    let mut search = Search::new(ops, start);
    let outcome = search.run(states_max);
    search.check_invariants();
    SearchResult {
        outcome,
        states_explored: search.memo.len() as u64,
    }
}
