//! Plans: the list of actions that turns the recorded state into the desired description.

use crate::ids::{NodeId, NodeName};
use crate::status::NodeStatus;
use serde::{Deserialize, Serialize};

/// What `plan` prints and `build` executes. Actions are in execution order: drops first
/// (reverse dependency order), then creates (dependency order); `keep` lines are
/// informational.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn creates(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Create { .. }))
            .count()
    }
    pub fn drops(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Drop { .. }))
            .count()
    }
    pub fn keeps(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Keep { .. }))
            .count()
    }
    /// Nothing to create or drop.
    pub fn is_noop(&self) -> bool {
        self.creates() == 0 && self.drops() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create one instance of `node`. `node_id` is assigned at planning time and is the
    /// idempotency key of the create.
    Create {
        node: NodeName,
        node_id: NodeId,
        /// Nodes that must be ready before this instance starts.
        after: Vec<NodeName>,
    },
    /// Drop one existing instance.
    Drop {
        node: NodeName,
        node_id: NodeId,
        reason: DropReason,
    },
    /// An existing instance that stays.
    Keep {
        node: NodeName,
        node_id: NodeId,
        status: NodeStatus,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The node is no longer in the description.
    Removed,
    /// More instances than the node's `max` (or than a scale-down target).
    ScaleDown,
    /// The instance failed or its creation never finished.
    Failed,
    /// `destroy` of the whole infrastructure.
    Destroy,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Removed => "removed from the description",
            Self::ScaleDown => "above the node's scaling maximum",
            Self::Failed => "failed or unfinished",
            Self::Destroy => "destroy",
        })
    }
}

/// One line per action, in execution order: `- drop`, `+ create`, `= keep`.
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for a in &self.actions {
            match a {
                Action::Drop {
                    node,
                    node_id,
                    reason,
                } => writeln!(f, "- drop   {node} {node_id} ({reason})")?,
                Action::Create {
                    node,
                    node_id,
                    after,
                } => {
                    write!(f, "+ create {node} {node_id}")?;
                    if !after.is_empty() {
                        let names: Vec<&str> = after.iter().map(NodeName::as_str).collect();
                        write!(f, " after {}", names.join(", "))?;
                    }
                    writeln!(f)?;
                }
                Action::Keep {
                    node,
                    node_id,
                    status,
                } => writeln!(f, "= keep   {node} {node_id} ({status})")?,
            }
        }
        Ok(())
    }
}
