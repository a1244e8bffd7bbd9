//! Benchmark graphs: the shapes (chain, fan-out, layered), seeded per-node latencies, the
//! critical path, and the files that describe a graph to `occopus` (Occopus 1.10 format)
//! and to Terraform (`terraform_data` resources).
//!
//! Must not: run anything or measure anything; it only computes and writes text.

use std::fmt::Write as _;

/// The shape of a generated dependency graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `n1` depends on `n0`, `n2` on `n1`, ...: no concurrency at all.
    Chain,
    /// One root, every other node depends on it: maximal concurrency.
    FanOut,
    /// About √n layers of about √n nodes, each depending on two nodes of the layer above.
    Layered,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Chain, Shape::FanOut, Shape::Layered];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::FanOut => "fan-out",
            Shape::Layered => "layered",
        }
    }
}

/// A DAG over nodes `0..n`; every node depends only on nodes with a smaller index, so the
/// index order is a topological order.
#[derive(Debug, Clone)]
pub struct Graph {
    pub shape: Shape,
    /// `deps[i]`: the nodes node `i` depends on.
    pub deps: Vec<Vec<usize>>,
}

impl Graph {
    pub fn new(shape: Shape, n: usize) -> Self {
        let deps = (0..n)
            .map(|i| match shape {
                Shape::Chain if i > 0 => vec![i - 1],
                Shape::FanOut if i > 0 => vec![0],
                Shape::Layered => {
                    let w = layer_width(n);
                    if i < w {
                        return Vec::new();
                    }
                    let above = (i / w - 1) * w;
                    let (a, b) = (above + i % w, above + (i % w + 1) % w);
                    if a == b { vec![a] } else { vec![a, b] }
                }
                _ => Vec::new(),
            })
            .collect();
        Self { shape, deps }
    }

    pub fn len(&self) -> usize {
        self.deps.len()
    }

    pub fn edges(&self) -> usize {
        self.deps.iter().map(Vec::len).sum()
    }

    /// Length of the longest path when node `i` takes `weight[i]`: the earliest any
    /// scheduler can finish if each node starts the moment its dependencies finish.
    pub fn critical_path(&self, weight: &[u64]) -> u64 {
        let mut finish = vec![0u64; self.len()];
        for i in 0..self.len() {
            let start = self.deps[i].iter().map(|&d| finish[d]).max().unwrap_or(0);
            finish[i] = start + weight[i];
        }
        finish.into_iter().max().unwrap_or(0)
    }

    /// Number of nodes on the longest path counted in nodes (the depth of the DAG).
    pub fn depth(&self) -> usize {
        let w = vec![1u64; self.len()];
        self.critical_path(&w) as usize
    }
}

/// Width of a layer of the layered shape: √n rounded, at least 1.
fn layer_width(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).max(1)
}

/// Simulated latencies of one node, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub create_ms: u64,
    pub ready_after_ms: u64,
}

/// SplitMix64: a small, well-mixed, reproducible generator (no dependency needed).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value in `lo..=hi` drawn from `(seed, node, purpose)`.
fn draw(seed: u64, node: usize, purpose: u64, lo: u64, hi: u64) -> u64 {
    let r = splitmix64(seed ^ splitmix64(node as u64 ^ (purpose << 56)));
    lo + r % (hi - lo + 1)
}

/// Per-node latencies: `create` in `create`, `ready_after` in `ready`, seeded.
pub fn latencies(n: usize, seed: u64, create: [u64; 2], ready: [u64; 2]) -> Vec<Latency> {
    (0..n)
        .map(|i| Latency {
            create_ms: draw(seed, i, 1, create[0], create[1]),
            ready_after_ms: draw(seed, i, 2, ready[0], ready[1]),
        })
        .collect()
}

/// The name of node `i` (valid as an Occopus node name and a Terraform resource name).
pub fn node_name(i: usize) -> String {
    format!("n{i}")
}

/// The Occopus description (`infra.yaml`) of `g`, dependencies written with YAML aliases
/// as Occopus 1.10 requires. With `per_node_types`, node `i` has type `t<i>` (so it can
/// carry its own latencies); otherwise every node has type `zero`.
pub fn occopus_infra(g: &Graph, infra_name: &str, per_node_types: bool) -> String {
    let mut s = String::with_capacity(g.len() * 48);
    let _ = writeln!(
        s,
        "infra_name: {infra_name}\nuser_id: bench@example.org\nnodes:"
    );
    for i in 0..g.len() {
        let ty = if per_node_types {
            format!("t{i}")
        } else {
            "zero".into()
        };
        let _ = writeln!(s, "  - &n{i} {{name: {}, type: {ty}}}", node_name(i));
    }
    if g.edges() > 0 {
        s.push_str("dependencies:\n");
        for (i, deps) in g.deps.iter().enumerate() {
            for d in deps {
                let _ = writeln!(s, "  - [*n{i}, *n{d}]");
            }
        }
    }
    s
}

/// The node definitions (`nodes/node_definitions.yaml`) for [`occopus_infra`]: one `sim`
/// type `zero` with no latency, or one type per node with that node's fixed latencies.
pub fn occopus_node_defs(lat: Option<&[Latency]>) -> String {
    match lat {
        None => "'node_def:zero':\n  - resource:\n      type: sim\n".into(),
        Some(lat) => {
            let mut s = String::with_capacity(lat.len() * 96);
            for (i, l) in lat.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "'node_def:t{i}':\n  - resource:\n      type: sim\n      create_ms: {}\n      ready_after_ms: {}",
                    l.create_ms, l.ready_after_ms
                );
            }
            s
        }
    }
}

/// The equivalent Terraform configuration: one built-in `terraform_data` resource per
/// node, `depends_on` giving the same edges. Needs no provider download.
pub fn terraform_config(g: &Graph) -> String {
    let mut s = String::with_capacity(g.len() * 64);
    for (i, deps) in g.deps.iter().enumerate() {
        if deps.is_empty() {
            let _ = writeln!(s, "resource \"terraform_data\" \"{}\" {{}}", node_name(i));
        } else {
            let list: Vec<String> = deps
                .iter()
                .map(|&d| format!("terraform_data.{}", node_name(d)))
                .collect();
            let _ = writeln!(
                s,
                "resource \"terraform_data\" \"{}\" {{\n  depends_on = [{}]\n}}",
                node_name(i),
                list.join(", ")
            );
        }
    }
    s
}

/// Scheduling delay seen in a build's JSON event lines: for every node, the time from
/// its dependencies being ready (the build's start for a node without any) to its first
/// `nodecreating` event. `(max, median)` in ms; `None` when the lines hold no creates.
pub fn start_lags(events: &str, g: &Graph) -> Option<(f64, f64)> {
    let n = g.len();
    let mut start: Option<u64> = None;
    let mut creating: Vec<Option<u64>> = vec![None; n];
    let mut ready: Vec<Option<u64>> = vec![None; n];
    for line in events.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(at) = v["at_ms"].as_u64() else {
            continue;
        };
        start.get_or_insert(at);
        let node = v["node"]
            .as_str()
            .and_then(|s| s.strip_prefix('n'))
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&i| i < n);
        let (Some(i), Some(kind)) = (node, v["event"].as_str()) else {
            continue;
        };
        let slot = match kind {
            "nodecreating" => &mut creating[i],
            "nodeready" => &mut ready[i],
            _ => continue,
        };
        slot.get_or_insert(at);
    }
    let start = start?;
    let mut lags: Vec<f64> = Vec::with_capacity(n);
    for (i, deps) in g.deps.iter().enumerate() {
        let Some(c) = creating[i] else { continue };
        let mut from = start;
        for &d in deps {
            from = from.max(ready[d]?);
        }
        lags.push(c.saturating_sub(from) as f64);
    }
    if lags.is_empty() {
        return None;
    }
    lags.sort_by(f64::total_cmp);
    Some((lags[lags.len() - 1], lags[lags.len() / 2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_the_expected_edges_and_depth() {
        let c = Graph::new(Shape::Chain, 100);
        assert_eq!((c.edges(), c.depth()), (99, 100));
        let f = Graph::new(Shape::FanOut, 100);
        assert_eq!((f.edges(), f.depth()), (99, 2));
        assert!(f.deps[1..].iter().all(|d| d == &vec![0]));
        let l = Graph::new(Shape::Layered, 100);
        assert_eq!(l.depth(), 10);
        assert_eq!(l.edges(), 90 * 2);
        // Node 15 (layer 1, column 5) depends on columns 5 and 6 of layer 0.
        assert_eq!(l.deps[15], vec![5, 6]);
        // The last column wraps around.
        assert_eq!(l.deps[19], vec![9, 0]);
        for g in [c, f, l] {
            for (i, d) in g.deps.iter().enumerate() {
                assert!(d.iter().all(|&d| d < i), "{:?} node {i}", g.shape);
            }
        }
    }

    #[test]
    fn critical_path_is_the_heaviest_path() {
        // 0 -> 1 -> 2 and 0 -> 3 (fan-out of 4 has edges 1->0, 2->0, 3->0).
        let f = Graph::new(Shape::FanOut, 4);
        assert_eq!(f.critical_path(&[10, 1, 7, 3]), 17);
        let c = Graph::new(Shape::Chain, 4);
        assert_eq!(c.critical_path(&[10, 1, 7, 3]), 21);
    }

    #[test]
    fn latencies_are_seeded_and_in_range() {
        let a = latencies(500, 7, [50, 200], [20, 100]);
        assert_eq!(a, latencies(500, 7, [50, 200], [20, 100]));
        assert_ne!(a, latencies(500, 8, [50, 200], [20, 100]));
        assert!(a.iter().all(|l| (50..=200).contains(&l.create_ms)));
        assert!(a.iter().all(|l| (20..=100).contains(&l.ready_after_ms)));
        // Both ends of the range are reachable and the spread is not degenerate.
        let creates: std::collections::BTreeSet<u64> = a.iter().map(|l| l.create_ms).collect();
        assert!(creates.len() > 100, "{}", creates.len());
    }

    #[test]
    fn descriptions_use_aliases_and_terraform_uses_depends_on() {
        let g = Graph::new(Shape::Chain, 3);
        let infra = occopus_infra(&g, "bench-chain-3", false);
        assert!(
            infra.contains("  - &n2 {name: n2, type: zero}\n"),
            "{infra}"
        );
        assert!(infra.contains("  - [*n2, *n1]\n"), "{infra}");
        let lat = latencies(3, 1, [5, 5], [6, 6]);
        let defs = occopus_node_defs(Some(&lat));
        assert!(defs.contains("'node_def:t1':\n  - resource:\n      type: sim\n      create_ms: 5\n      ready_after_ms: 6\n"), "{defs}");
        let tf = terraform_config(&g);
        assert!(
            tf.contains("resource \"terraform_data\" \"n0\" {}\n"),
            "{tf}"
        );
        assert!(tf.contains("depends_on = [terraform_data.n1]"), "{tf}");
    }

    #[test]
    fn start_lags_measure_from_the_dependencies_being_ready() {
        let g = Graph::new(Shape::FanOut, 3);
        let ev = |at: u64, kind: &str, node: &str| {
            format!("{{\"at_ms\":{at},\"event\":\"{kind}\",\"node\":\"{node}\"}}\n")
        };
        let mut text = "{\"at_ms\":100,\"event\":\"infrastart\"}\n".to_string();
        text += &ev(102, "nodecreating", "n0");
        text += &ev(150, "nodeready", "n0");
        text += &ev(151, "nodecreating", "n1");
        text += &ev(160, "nodecreating", "n2");
        text += "not json\n";
        text += &ev(200, "nodeready", "n1");
        // Lags: n0 2 ms after the start, n1 1 ms and n2 10 ms after n0 was ready.
        assert_eq!(start_lags(&text, &g), Some((10.0, 2.0)));
        assert_eq!(start_lags("", &g), None);
    }
}
