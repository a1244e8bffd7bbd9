//! Structured events: every step of a build, destroy or maintenance pass emits one.
//! The CLI renders them as live progress or JSON lines; the names follow Occopus's event
//! log (`infrastart`, `nodecreating`, ...) where Occopus has one.

use crate::ids::{InfraId, NodeId, NodeName};
use crate::instance::Addresses;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub infra_id: InfraId,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum EventKind {
    /// A build or update started.
    InfraStart {
        name: String,
        creates: usize,
        drops: usize,
    },
    /// Every node is ready.
    InfraReady {
        elapsed_ms: u64,
    },
    /// The build failed; `rolled_back` says whether what it created was dropped.
    InfraFailed {
        message: String,
        rolled_back: bool,
    },
    /// Destroy started.
    InfraDrop {
        instances: usize,
    },
    /// Destroy finished.
    InfraDropped {
        elapsed_ms: u64,
    },
    /// Intent to create persisted; about to call the resource handler.
    NodeCreating {
        node: NodeName,
        node_id: NodeId,
        resource_type: String,
    },
    /// The resource handler made the resource.
    NodeCreated {
        node: NodeName,
        node_id: NodeId,
        addresses: Addresses,
    },
    /// Resource, config manager and health checks all pass.
    NodeReady {
        node: NodeName,
        node_id: NodeId,
        elapsed_ms: u64,
    },
    /// A health poll did not pass yet (rate-limited by the engine).
    NodeWaiting {
        node: NodeName,
        node_id: NodeId,
        report: String,
    },
    /// A transient plugin error is being retried.
    NodeRetry {
        node: NodeName,
        node_id: NodeId,
        attempt: u32,
        message: String,
    },
    NodeFailed {
        node: NodeName,
        node_id: NodeId,
        message: String,
    },
    /// Not attempted because a node it depends on failed (reported once per node).
    NodeSkipped {
        node: NodeName,
        because: NodeName,
    },
    NodeDropping {
        node: NodeName,
        node_id: NodeId,
    },
    NodeDropped {
        node: NodeName,
        node_id: NodeId,
    },
    /// A non-fatal problem worth showing (e.g. an unsupported cloud-init key).
    Warning {
        node: Option<NodeName>,
        message: String,
    },
}

impl EventKind {
    /// The node this event is about, if any.
    pub fn node(&self) -> Option<&NodeName> {
        match self {
            Self::NodeCreating { node, .. }
            | Self::NodeCreated { node, .. }
            | Self::NodeReady { node, .. }
            | Self::NodeWaiting { node, .. }
            | Self::NodeRetry { node, .. }
            | Self::NodeFailed { node, .. }
            | Self::NodeSkipped { node, .. }
            | Self::NodeDropping { node, .. }
            | Self::NodeDropped { node, .. } => Some(node),
            Self::Warning { node, .. } => node.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let e = Event {
            at_ms: 1,
            infra_id: InfraId::new("i"),
            kind: EventKind::NodeReady {
                node: NodeName::parse("db").unwrap(),
                node_id: NodeId::new("n"),
                elapsed_ms: 5,
            },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"at_ms":1,"infra_id":"i","event":"nodeready","node":"db","node_id":"n","elapsed_ms":5}"#
        );
    }
}
