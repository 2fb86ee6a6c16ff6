//! Finds cycles in the append workload's dependency graph (transactions as nodes, ww/wr/rw
//! edges), and reports each as a short, readable cycle.
//!
//! Strongly connected components come from an iterative Tarjan (no recursion: graphs have
//! tens of thousands of nodes). In every component with more than one transaction, a
//! breadth-first search from its first node, staying inside the component, finds the
//! shortest cycle through that node: that is what the anomaly shows, e.g.
//! `T1 -ww-> T2 -rw-> T1`.
//!
//! Called by `append` only; knows nothing about keys or histories.

use serde::Serialize;

use super::append::Txn;
use super::{Anomaly, AnomalyKind};

/// Cycles reported at most (one per component).
const REPORTED_MAX: usize = 3;

/// Why one transaction must precede another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum EdgeKind {
    /// Write-write: `to` appended right after `from` on some key.
    Ww,
    /// Write-read: `to` read `from`'s append as the list's last element.
    Wr,
    /// Read-write (anti-dependency): `from` read the list before `to`'s append.
    Rw,
    /// Real time: `from` completed before `to` was invoked.
    Rt,
}

/// A dependency `from` → `to` between transaction numbers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
}

/// Reports up to `REPORTED_MAX` dependency cycles among `nodes` transactions.
pub(crate) fn find(nodes: usize, edges: &[Edge], txns: &[Txn]) -> Vec<Anomaly> {
    let mut out: Vec<Vec<(usize, EdgeKind)>> = vec![Vec::new(); nodes];
    for edge in edges {
        out[edge.from].push((edge.to, edge.kind));
    }
    let component = tarjan(&out);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for (node, &c) in component.iter().enumerate() {
        members[c].push(node);
    }
    let mut anomalies = Vec::new();
    for group in members.iter().filter(|g| g.len() > 1).take(REPORTED_MAX) {
        let cycle = shortest_cycle(group[0], &out, &component);
        let mut explanation = String::from("transactions cannot be serialized:");
        for (node, kind) in &cycle {
            explanation.push_str(&format!(" #{} -{:?}->", txns[*node].index, kind));
        }
        explanation.push_str(&format!(" #{}", txns[group[0]].index));
        anomalies.push(Anomaly {
            kind: AnomalyKind::DependencyCycle,
            key: None,
            explanation,
            ops: cycle
                .iter()
                .map(|(node, _)| txns[*node].summary())
                .collect(),
        });
    }
    anomalies
}

/// The component number of every node (Tarjan's algorithm, with an explicit stack).
fn tarjan(out: &[Vec<(usize, EdgeKind)>]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = out.len();
    let (mut order, mut low, mut component) = (vec![UNSEEN; n], vec![0; n], vec![UNSEEN; n]);
    let (mut on_stack, mut stack) = (vec![false; n], Vec::new());
    let (mut counter, mut components) = (0, 0);
    for root in 0..n {
        if order[root] != UNSEEN {
            continue;
        }
        // Each frame: a node and how many of its edges were followed.
        let mut frames = vec![(root, 0)];
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut next_edge)) = frames.last_mut() {
            if let Some(&(to, _)) = out[node].get(*next_edge) {
                *next_edge += 1;
                if order[to] == UNSEEN {
                    order[to] = counter;
                    low[to] = counter;
                    counter += 1;
                    stack.push(to);
                    on_stack[to] = true;
                    frames.push((to, 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(order[to]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(parent, _)) = frames.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == order[node] {
                loop {
                    let member = stack.pop().expect("the node is on the stack");
                    on_stack[member] = false;
                    component[member] = components;
                    if member == node {
                        break;
                    }
                }
                components += 1;
            }
        }
    }
    component
}

/// The shortest cycle through `start` inside its component: (node, edge to the next node).
fn shortest_cycle(
    start: usize,
    out: &[Vec<(usize, EdgeKind)>],
    component: &[usize],
) -> Vec<(usize, EdgeKind)> {
    let mut parent: std::collections::HashMap<usize, (usize, EdgeKind)> = Default::default();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &(to, kind) in &out[node] {
            if component[to] != component[start] {
                continue;
            }
            if to == start {
                // Walk back from `node` to `start`.
                let mut cycle = vec![(node, kind)];
                let mut at = node;
                while at != start {
                    let (from, via) = parent[&at];
                    cycle.push((from, via));
                    at = from;
                }
                cycle.reverse();
                return cycle;
            }
            if to != start && !parent.contains_key(&to) {
                parent.insert(to, (node, kind));
                queue.push_back(to);
            }
        }
    }
    unreachable!("a node in a component of two or more lies on a cycle")
}
