//! The node-level dependency graph of a description: node names to dense indices, edges
//! as a [`Dag`]. Nodes that exist only in the recorded state (removed from the
//! description) are added as isolated extras so drops can schedule them too.

use crate::EngineError;
use occopus_graph::Dag;
use occopus_model::{NodeName, ResolvedInfra};
use std::collections::HashMap;

pub(crate) struct NodeGraph {
    pub names: Vec<NodeName>,
    pub index: HashMap<NodeName, usize>,
    pub dag: Dag,
    /// Nodes of the description (the first `described` indices); extras come after.
    pub described: usize,
}

impl NodeGraph {
    /// Build the graph of `infra`; a cycle or an edge naming an unknown node is an error.
    pub fn of(infra: &ResolvedInfra) -> Result<Self, EngineError> {
        let names: Vec<NodeName> = infra.nodes.iter().map(|n| n.name.clone()).collect();
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i).is_some() {
                return Err(EngineError::Invalid(format!(
                    "node name `{n}` is used twice in the description"
                )));
            }
        }
        let mut dag = Dag::new(names.len());
        for e in &infra.edges {
            let pos = |n: &NodeName| {
                index.get(n).copied().ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "dependency `{}` -> `{}` names `{n}`, which is not a node of the description",
                        e.dependent, e.dependee
                    ))
                })
            };
            dag.add_edge(pos(&e.dependent)?, pos(&e.dependee)?);
        }
        if let Some(c) = dag.find_cycle() {
            let path: Vec<&str> = c.0.iter().map(|&i| names[i].as_str()).collect();
            return Err(EngineError::Invalid(format!(
                "dependency cycle: {}",
                path.join(" -> ")
            )));
        }
        let described = names.len();
        Ok(Self {
            names,
            index,
            dag,
            described,
        })
    }

    /// Node indices, dependees before dependents.
    pub fn topo_order(&self) -> Vec<usize> {
        // Checked acyclic at construction; extras have no edges.
        self.dag
            .topo_order()
            .unwrap_or_else(|_| (0..self.dag.len()).collect())
    }
}
