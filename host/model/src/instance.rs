//! What is recorded about one node instance.

use crate::ids::{NodeId, NodeName};
use crate::status::NodeStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Addresses of an instance, as Occopus exposes them to templates: `getip` returns
/// `primary`, `getprivip` returns `private`, `getipall` collects `primary` of every instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    pub primary: Option<String>,
    pub private: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<String>,
}

/// Where an instance is in its life. The phase is written *before* the plugin call it
/// protects (`Creating`, `Dropping`) and after the outcome (`Created`, `Ready`, `Failed`,
/// `Dropped`), so a crashed process knows which calls may have happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstancePhase {
    /// Intent to create persisted; the plugin may or may not have made the resource.
    Creating,
    /// The plugin returned an instance; not yet ready.
    Created,
    /// Resource, config manager and health checks all passed.
    Ready,
    /// Creation or health failed; the resource may still exist and must be dropped.
    Failed,
    /// Intent to drop persisted.
    Dropping,
    /// Gone (kept only until the record is compacted away).
    Dropped,
}

/// The durable record of one node instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub node_id: NodeId,
    pub node_name: NodeName,
    /// Which implementation of the node definition was chosen.
    pub impl_index: usize,
    /// The resource `type` (plugin routing key).
    pub resource_type: String,
    /// The rendered resource section (never holds credentials: those are selected from
    /// auth data at each call).
    pub resource: Value,
    /// Plugin-specific instance data returned by create (opaque JSON).
    pub instance: Option<Value>,
    pub addresses: Addresses,
    pub phase: InstancePhase,
    pub status: NodeStatus,
    /// Last status message (why pending/failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at_ms: Option<u64>,
}
