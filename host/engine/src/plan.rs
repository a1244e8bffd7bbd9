//! Planning: the desired infrastructure (a `ResolvedInfra` and each node's scaling) against
//! what the state records. Pure: no plugin calls, no IO.
//!
//! Rules, per recorded instance:
//! - its node is no longer in the description → drop (`removed`);
//! - `failed`, or `dropping` (an interrupted drop) → drop (`failed`); a failed instance
//!   does not count, so it is replaced if the node falls below `min`;
//! - `creating` or `created` (a build stopped half-way) → create again *with the same node
//!   id*: the plugin adopts what it made before, so a resumed build never makes a second
//!   resource;
//! - `ready` → keep.
//!
//! Then per node: more live instances than `max` → drop the youngest; fewer than `min` →
//! create new ones with fresh UUID v4 node ids.
//!
//! Order (execution order): drops first, removed nodes then reverse dependency order;
//! then creates in dependency order; then keeps (informational).

use crate::graph::NodeGraph;
use occopus_model::plan::DropReason;
use occopus_model::{Action, InstancePhase, InstanceRecord, NodeId, Plan, ResolvedInfra};
use occopus_state::InfraState;
use std::collections::HashSet;

/// A fresh instance id (UUID v4).
pub(crate) fn new_node_id() -> NodeId {
    NodeId::new(uuid::Uuid::new_v4().to_string())
}

/// Fresh instance ids (UUID v4) for a plan: random bytes are fetched from the OS for 64
/// ids at a time instead of one system call per id (a 10,000-node plan made 10,000).
struct NodeIds {
    bytes: [u8; 16 * 64],
    next: usize,
}

impl NodeIds {
    fn new() -> Self {
        Self {
            bytes: [0; 16 * 64],
            next: 64,
        }
    }

    fn next(&mut self) -> NodeId {
        if self.next == 64 {
            if getrandom::fill(&mut self.bytes).is_err() {
                return new_node_id();
            }
            self.next = 0;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.bytes[self.next * 16..][..16]);
        self.next += 1;
        NodeId::new(uuid::Builder::from_random_bytes(b).into_uuid().to_string())
    }
}

pub(crate) fn compute(
    infra: &ResolvedInfra,
    graph: &NodeGraph,
    state: Option<&InfraState>,
) -> Plan {
    let n = graph.described;
    let mut live: Vec<Vec<&InstanceRecord>> = vec![Vec::new(); n];
    let mut drops: Vec<Vec<Action>> = vec![Vec::new(); n];
    let mut removed = Vec::new();
    for rec in state.map(|s| s.instances.as_slice()).unwrap_or_default() {
        let drop = |reason| Action::Drop {
            node: rec.node_name.clone(),
            node_id: rec.node_id.clone(),
            reason,
        };
        let Some(&i) = graph.index.get(&rec.node_name).filter(|&&i| i < n) else {
            removed.push(drop(DropReason::Removed));
            continue;
        };
        match rec.phase {
            InstancePhase::Failed | InstancePhase::Dropping => {
                drops[i].push(drop(DropReason::Failed));
            }
            InstancePhase::Dropped => {}
            InstancePhase::Creating | InstancePhase::Created | InstancePhase::Ready => {
                live[i].push(rec);
            }
        }
    }

    let order = graph.topo_order();
    let mut ids = NodeIds::new();
    let mut creates = Vec::new();
    let mut keeps = Vec::new();
    for &i in &order {
        let node = &infra.nodes[i];
        let mut mine = std::mem::take(&mut live[i]);
        let max = node.scaling.max as usize;
        if mine.len() > max {
            // Youngest first: latest creation time, then latest recorded.
            let mut by_age: Vec<(usize, &InstanceRecord)> =
                mine.iter().copied().enumerate().collect();
            by_age.sort_by_key(|(pos, r)| std::cmp::Reverse((r.created_at_ms, *pos)));
            let extra: HashSet<&NodeId> = by_age[..mine.len() - max]
                .iter()
                .map(|(_, r)| &r.node_id)
                .collect();
            for id in by_age[..mine.len() - max].iter().map(|(_, r)| &r.node_id) {
                drops[i].push(Action::Drop {
                    node: node.name.clone(),
                    node_id: id.clone(),
                    reason: DropReason::ScaleDown,
                });
            }
            mine.retain(|r| !extra.contains(&r.node_id));
        }
        let after: Vec<_> = graph
            .dag
            .dependees(i)
            .iter()
            .map(|&d| graph.names[d].clone())
            .collect();
        for r in &mine {
            if r.phase == InstancePhase::Ready {
                keeps.push(Action::Keep {
                    node: node.name.clone(),
                    node_id: r.node_id.clone(),
                    status: r.status,
                });
            } else {
                creates.push(Action::Create {
                    node: node.name.clone(),
                    node_id: r.node_id.clone(),
                    after: after.clone(),
                });
            }
        }
        for _ in mine.len()..node.scaling.min as usize {
            creates.push(Action::Create {
                node: node.name.clone(),
                node_id: ids.next(),
                after: after.clone(),
            });
        }
    }
    let mut actions = removed;
    for &i in order.iter().rev() {
        actions.append(&mut drops[i]);
    }
    actions.extend(creates);
    actions.extend(keeps);
    Plan { actions }
}

#[cfg(test)]
mod tests {
    use super::NodeIds;
    use std::collections::HashSet;

    #[test]
    fn node_ids_are_distinct_uuid_v4_across_batches() {
        let mut ids = NodeIds::new();
        let all: Vec<String> = (0..200).map(|_| ids.next().to_string()).collect();
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), 200);
        for id in &all {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }
}
