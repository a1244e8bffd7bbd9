//! A generic dependency DAG over dense node indices `0..n`: building it, finding cycles,
//! ordering, Occopus's topological levels, and a ready-set tracker for schedulers.
//!
//! Owns: graph algorithms only. Must not: do IO, know about nodes' names, plugins or
//! time (critical-path weights are plain numbers passed in).
//!
//! Edge direction: `add_edge(dependent, dependee)` means *dependent waits for dependee*
//! (Occopus's `[dependent, dependee]` pairs).

use std::collections::VecDeque;

/// A dependency graph. Duplicate edges are ignored; self-edges are kept (and reported as
/// cycles).
#[derive(Debug, Clone, Default)]
pub struct Dag {
    /// `deps[n]`: nodes `n` waits for.
    deps: Vec<Vec<usize>>,
    /// `rdeps[n]`: nodes waiting for `n`.
    rdeps: Vec<Vec<usize>>,
}

/// A dependency cycle, as the list of nodes along it with the first repeated at the end
/// (`[a, b, c, a]` for a waits for b, b for c, c for a).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle through {} nodes", .0.len().saturating_sub(1))]
pub struct Cycle(pub Vec<usize>);

impl Dag {
    pub fn new(n: usize) -> Self {
        Self {
            deps: vec![Vec::new(); n],
            rdeps: vec![Vec::new(); n],
        }
    }

    pub fn len(&self) -> usize {
        self.deps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    /// Add a node; returns its index.
    pub fn add_node(&mut self) -> usize {
        self.deps.push(Vec::new());
        self.rdeps.push(Vec::new());
        self.deps.len() - 1
    }

    /// `dependent` waits for `dependee`. Panics if an index is out of range (a caller bug,
    /// not input).
    pub fn add_edge(&mut self, dependent: usize, dependee: usize) {
        if !self.deps[dependent].contains(&dependee) {
            self.deps[dependent].push(dependee);
            self.rdeps[dependee].push(dependent);
        }
    }

    /// Nodes `n` waits for.
    pub fn dependees(&self, n: usize) -> &[usize] {
        &self.deps[n]
    }

    /// Nodes waiting for `n`.
    pub fn dependents(&self, n: usize) -> &[usize] {
        &self.rdeps[n]
    }

    pub fn edge_count(&self) -> usize {
        self.deps.iter().map(Vec::len).sum()
    }

    /// One cycle, if any (iterative DFS; deterministic: lowest start index first).
    pub fn find_cycle(&self) -> Option<Cycle> {
        const NEW: u8 = 0;
        const ON_STACK: u8 = 1;
        const DONE: u8 = 2;
        let n = self.len();
        let mut mark = vec![NEW; n];
        for start in 0..n {
            if mark[start] != NEW {
                continue;
            }
            // Stack of (node, next edge position); `path` mirrors it.
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = ON_STACK;
            while let Some(&mut (node, ref mut pos)) = stack.last_mut() {
                if let Some(&next) = self.deps[node].get(*pos) {
                    *pos += 1;
                    match mark[next] {
                        NEW => {
                            mark[next] = ON_STACK;
                            stack.push((next, 0));
                        }
                        ON_STACK => {
                            let from = stack.iter().position(|(x, _)| *x == next).unwrap_or(0);
                            let mut cycle: Vec<usize> =
                                stack[from..].iter().map(|(x, _)| *x).collect();
                            cycle.push(next);
                            return Some(Cycle(cycle));
                        }
                        _ => {}
                    }
                } else {
                    mark[node] = DONE;
                    stack.pop();
                }
            }
        }
        None
    }

    /// Dependees before dependents (Kahn's algorithm, stable by index).
    pub fn topo_order(&self) -> Result<Vec<usize>, Cycle> {
        let levels = self.levels()?;
        Ok(levels.into_iter().flatten().collect())
    }

    /// Occopus's topological levels: level 0 holds nodes that depend on nothing; remove
    /// them and repeat. Used for display and for Occopus-compatible plans; the executor
    /// schedules per edge, not per level.
    pub fn levels(&self) -> Result<Vec<Vec<usize>>, Cycle> {
        let n = self.len();
        let mut remaining: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let mut current: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        let mut levels = Vec::new();
        let mut placed = 0;
        while !current.is_empty() {
            placed += current.len();
            let mut next = Vec::new();
            for &i in &current {
                for &d in &self.rdeps[i] {
                    remaining[d] -= 1;
                    if remaining[d] == 0 {
                        next.push(d);
                    }
                }
            }
            next.sort_unstable();
            levels.push(std::mem::take(&mut current));
            current = next;
        }
        if placed < n {
            return Err(self.find_cycle().unwrap_or(Cycle(Vec::new())));
        }
        Ok(levels)
    }

    /// Every node that (transitively) waits for `n`, excluding `n`.
    pub fn all_dependents(&self, n: usize) -> Vec<usize> {
        self.reach(n, &self.rdeps)
    }

    /// Every node `n` (transitively) waits for, excluding `n`.
    pub fn all_dependees(&self, n: usize) -> Vec<usize> {
        self.reach(n, &self.deps)
    }

    fn reach(&self, n: usize, adj: &[Vec<usize>]) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut queue = VecDeque::from([n]);
        seen[n] = true;
        let mut out = Vec::new();
        while let Some(x) = queue.pop_front() {
            for &y in &adj[x] {
                if !seen[y] {
                    seen[y] = true;
                    out.push(y);
                    queue.push_back(y);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The same graph with every edge reversed: scheduling it with [`ReadySet`] gives a
    /// destroy order (dependents go before what they depend on).
    pub fn reversed(&self) -> Dag {
        Dag {
            deps: self.rdeps.clone(),
            rdeps: self.deps.clone(),
        }
    }

    /// Length of the longest weighted path, where a node's weight is the time from its
    /// start until its dependents may start (`weights[n]`). Errors on a cycle.
    pub fn critical_path(&self, weights: &[f64]) -> Result<f64, Cycle> {
        let order = self.topo_order()?;
        let mut finish = vec![0.0f64; self.len()];
        for &n in &order {
            let start = self.deps[n].iter().map(|&d| finish[d]).fold(0.0, f64::max);
            finish[n] = start + weights.get(n).copied().unwrap_or(0.0);
        }
        Ok(finish.into_iter().fold(0.0, f64::max))
    }
}

/// Tracks which nodes may start: a node becomes ready once every node it waits for has
/// completed. Failing a node blocks everything that transitively waits for it.
#[derive(Debug, Clone)]
pub struct ReadySet {
    remaining: Vec<usize>,
    state: Vec<Slot>,
    ready: VecDeque<usize>,
    open: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Waiting,
    Ready,
    Started,
    Done,
    Failed,
    Blocked,
}

impl ReadySet {
    /// Start with every node of `dag` to run. The DAG must be acyclic (check first).
    pub fn new(dag: &Dag) -> Self {
        Self::with_subset(dag, &vec![true; dag.len()])
    }

    /// Only nodes with `include[n]` run; the others count as already completed.
    pub fn with_subset(dag: &Dag, include: &[bool]) -> Self {
        let n = dag.len();
        let mut remaining = vec![0; n];
        let mut state = vec![Slot::Done; n];
        let mut ready = VecDeque::new();
        let mut open = 0;
        for i in 0..n {
            if !include.get(i).copied().unwrap_or(false) {
                continue;
            }
            open += 1;
            remaining[i] = dag
                .dependees(i)
                .iter()
                .filter(|&&d| include.get(d).copied().unwrap_or(false))
                .count();
            if remaining[i] == 0 {
                state[i] = Slot::Ready;
                ready.push_back(i);
            } else {
                state[i] = Slot::Waiting;
            }
        }
        Self {
            remaining,
            state,
            ready,
            open,
        }
    }

    /// Take the next node that may start (FIFO in the order nodes became ready).
    pub fn pop(&mut self) -> Option<usize> {
        let n = self.ready.pop_front()?;
        self.state[n] = Slot::Started;
        Some(n)
    }

    /// Nodes ready to start, without taking them.
    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }

    /// Mark a started node completed; returns how many nodes became ready.
    pub fn complete(&mut self, dag: &Dag, n: usize) -> usize {
        if self.state[n] != Slot::Started && self.state[n] != Slot::Ready {
            return 0;
        }
        self.state[n] = Slot::Done;
        self.open -= 1;
        let mut woke = 0;
        for &d in dag.dependents(n) {
            if self.state[d] == Slot::Waiting {
                self.remaining[d] -= 1;
                if self.remaining[d] == 0 {
                    self.state[d] = Slot::Ready;
                    self.ready.push_back(d);
                    woke += 1;
                }
            }
        }
        woke
    }

    /// Mark a started node failed; every node waiting on it (transitively) is blocked and
    /// returned, so the caller can report each once.
    pub fn fail(&mut self, dag: &Dag, n: usize) -> Vec<usize> {
        if matches!(self.state[n], Slot::Done | Slot::Failed | Slot::Blocked) {
            return Vec::new();
        }
        self.state[n] = Slot::Failed;
        self.open -= 1;
        let mut blocked = Vec::new();
        let mut queue = VecDeque::from([n]);
        while let Some(x) = queue.pop_front() {
            for &d in dag.dependents(x) {
                if matches!(self.state[d], Slot::Waiting | Slot::Ready) {
                    if self.state[d] == Slot::Ready {
                        self.ready.retain(|&r| r != d);
                    }
                    self.state[d] = Slot::Blocked;
                    self.open -= 1;
                    blocked.push(d);
                    queue.push_back(d);
                }
            }
        }
        blocked
    }

    /// Nodes not yet completed, failed or blocked (started ones included).
    pub fn open(&self) -> usize {
        self.open
    }

    /// Everything completed, failed or blocked.
    pub fn is_finished(&self) -> bool {
        self.open == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(n: usize, edges: &[(usize, usize)]) -> Dag {
        let mut d = Dag::new(n);
        for &(a, b) in edges {
            d.add_edge(a, b);
        }
        d
    }

    #[test]
    fn cycles_are_reported_as_paths() {
        let d = dag(4, &[(0, 1), (1, 2), (2, 0), (3, 0)]);
        let c = d.find_cycle().unwrap();
        assert_eq!(c.0, vec![0, 1, 2, 0]);
        assert!(d.levels().is_err());
        assert_eq!(dag(1, &[(0, 0)]).find_cycle().unwrap().0, vec![0, 0]);
        assert!(dag(3, &[(0, 1), (0, 2), (1, 2)]).find_cycle().is_none());
    }

    #[test]
    fn occopus_levels() {
        // autoscaling-dataavenue: da->db, lb->da, prometheus->db  (0 db, 1 prom, 2 lb, 3 da)
        let d = dag(4, &[(3, 0), (2, 3), (1, 0)]);
        assert_eq!(d.levels().unwrap(), vec![vec![0], vec![1, 3], vec![2]]);
        assert_eq!(d.topo_order().unwrap(), vec![0, 1, 3, 2]);
        assert_eq!(d.all_dependents(0), vec![1, 2, 3]);
        assert_eq!(d.all_dependees(2), vec![0, 3]);
    }

    #[test]
    fn ready_set_is_per_edge() {
        // 0 <- 1, 2 <- 3 : completing 0 wakes 1 even though 2 is still running.
        let d = dag(4, &[(1, 0), (3, 2)]);
        let mut r = ReadySet::new(&d);
        assert_eq!(r.pop(), Some(0));
        assert_eq!(r.pop(), Some(2));
        assert_eq!(r.pop(), None);
        assert_eq!(r.complete(&d, 0), 1);
        assert_eq!(r.pop(), Some(1));
        assert_eq!(r.open(), 3);
        let blocked = r.fail(&d, 2);
        assert_eq!(blocked, vec![3]);
        r.complete(&d, 1);
        assert!(r.is_finished());
    }

    #[test]
    fn subsets_and_reverse() {
        let d = dag(3, &[(1, 0), (2, 1)]);
        let mut r = ReadySet::with_subset(&d, &[false, true, true]);
        assert_eq!(r.pop(), Some(1));
        let rev = d.reversed();
        let mut r = ReadySet::new(&rev);
        assert_eq!(r.pop(), Some(2));
        assert_eq!(r.pop(), None);
        r.complete(&rev, 2);
        assert_eq!(r.pop(), Some(1));
    }

    #[test]
    fn critical_path() {
        let d = dag(4, &[(1, 0), (2, 0), (3, 1), (3, 2)]);
        assert_eq!(d.critical_path(&[1.0, 5.0, 2.0, 1.0]).unwrap(), 7.0);
    }
}
