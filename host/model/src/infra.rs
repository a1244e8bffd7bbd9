//! The resolved infrastructure: what the description crate produces after parsing and
//! validating an infrastructure description plus its node definitions, and what the
//! planner and executor consume.
//!
//! Sections stay *unrendered* here (they may hold Jinja2 templates); the engine renders
//! them per instance, just before that instance is created.

use crate::ids::NodeName;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A validated infrastructure description with its node definitions attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedInfra {
    /// `infra_name`.
    pub name: String,
    /// `user_id` (Occopus copies it into every node; it is not used for auth).
    pub user_id: Option<String>,
    /// Infrastructure-level `variables` (already merged into each node's variables).
    pub variables: Value,
    /// Nodes in description order.
    pub nodes: Vec<NodeSpec>,
    /// Dependency edges: `dependent` waits until `dependee` is ready.
    pub edges: Vec<Edge>,
}

impl ResolvedInfra {
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }
}

/// One node of the description (a *node*, of which `scaling` says how many *instances*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: NodeName,
    /// `type`: selects the node definition `node_def:<type>`.
    pub type_name: String,
    pub scaling: Scaling,
    /// `filter`: kept implementations are those whose `resource` contains every pair.
    pub filter: Map<String, Value>,
    /// Infra-level variables deep-merged with the node's own (node wins).
    pub variables: Value,
    /// Candidate implementations after applying `filter`; never empty once validated.
    pub implementations: Vec<NodeImpl>,
}

/// Occopus scaling limits. `min` defaults to 1 and is at least 1; `max` defaults to `min`
/// and is at least `min`. The initial instance count is `min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    pub min: u32,
    pub max: u32,
}

impl Scaling {
    /// Apply Occopus's defaults (`get_scaling_limits`) to the values written by the user.
    pub fn from_written(min: Option<u32>, max: Option<u32>) -> Self {
        let min = min.unwrap_or(1).max(1);
        let max = max.unwrap_or(min).max(min);
        Self { min, max }
    }

    /// Clamp a requested instance count into `[min, max]`.
    pub fn clamp(&self, n: u32) -> u32 {
        n.clamp(self.min, self.max)
    }
}

impl Default for Scaling {
    fn default() -> Self {
        Self { min: 1, max: 1 }
    }
}

/// A dependency: `dependent` starts only once `dependee` is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub dependent: NodeName,
    pub dependee: NodeName,
    /// Attribute `mappings` of the `connection` form (used by config managers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<Value>,
    /// Not written by the user: added because `dependent`'s templates call
    /// `getip('dependee')` (or `getprivip`/`getipall`) without a dependency on it. Occopus
    /// 1.10 got away with that only when creating nodes one by one in list order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

/// One implementation from a `node_def:<type>` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeImpl {
    /// Position in the `node_def:<type>` list; recorded in state so a resumed instance
    /// keeps the implementation it was created with.
    pub index: usize,
    /// The `resource` section as written (includes `type`).
    pub resource: Map<String, Value>,
    pub contextualisation: Contextualisation,
    /// The `config_management` section as written (includes `type`), if any.
    pub config_management: Option<Map<String, Value>>,
    pub health_check: HealthCheckSpec,
}

impl NodeImpl {
    /// The resource `type` (routes to a resource-handler plugin).
    pub fn resource_type(&self) -> &str {
        self.resource
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The `contextualisation` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Contextualisation {
    /// User data for a VM: a cloud-init document (text, already `#cloud-config`-prefixed
    /// when it came from `!yaml_import`), plus `attributes` for config managers.
    Cloudinit {
        context_template: String,
        #[serde(default)]
        attributes: Value,
    },
    /// Container contextualisation: `env` list (`"K=V"`) and `command` (string or list).
    Docker {
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        command: Option<Value>,
        #[serde(default)]
        context_variables: Value,
    },
    /// No user data; attributes only. This is the default when the section is absent.
    Basic {
        #[serde(default)]
        attributes: Value,
    },
}

impl Default for Contextualisation {
    fn default() -> Self {
        Self::Basic {
            attributes: Value::Null,
        }
    }
}

/// The `health_check` section. For the `basic` checker these are Occopus's keys with
/// Occopus's defaults (`ping: true`, `timeout: 600`); other checker types keep their own
/// keys in `section`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckSpec {
    /// Checker type (`basic` by default): routes to a health-checker plugin.
    pub type_name: String,
    /// The section as written, with defaults filled in (templates unrendered).
    pub section: Map<String, Value>,
    /// Continuous failure longer than this marks the node `failed` (seconds).
    pub timeout_secs: u64,
}

impl HealthCheckSpec {
    pub const DEFAULT_TIMEOUT_SECS: u64 = 600;

    /// Occopus's default: basic checker, ping on, timeout 600 s.
    pub fn occopus_default() -> Self {
        let mut section = Map::new();
        section.insert("type".into(), Value::from("basic"));
        section.insert("ping".into(), Value::Bool(true));
        Self {
            type_name: "basic".into(),
            section,
            timeout_secs: Self::DEFAULT_TIMEOUT_SECS,
        }
    }

    /// Whether there is anything to check at all. A `basic` section with ping off and no
    /// ports, urls or databases is ready as soon as the resource is; the engine then does
    /// not call a checker.
    pub fn has_checks(&self) -> bool {
        if self.type_name != "basic" {
            return true;
        }
        let ping = self
            .section
            .get("ping")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let non_empty = |k: &str| {
            self.section
                .get(k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        ping || non_empty("ports") || non_empty("urls") || non_empty("mysqldbs")
    }
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        Self::occopus_default()
    }
}

/// An entry of `health_check.mysqldbs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlDbSpec {
    pub name: String,
    pub user: String,
    pub pass: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_defaults_match_occopus() {
        assert_eq!(
            Scaling::from_written(None, None),
            Scaling { min: 1, max: 1 }
        );
        assert_eq!(
            Scaling::from_written(Some(0), None),
            Scaling { min: 1, max: 1 }
        );
        assert_eq!(
            Scaling::from_written(Some(2), None),
            Scaling { min: 2, max: 2 }
        );
        assert_eq!(
            Scaling::from_written(Some(3), Some(1)),
            Scaling { min: 3, max: 3 }
        );
        assert_eq!(Scaling::from_written(Some(1), Some(5)).clamp(9), 5);
    }

    #[test]
    fn health_defaults() {
        let d = HealthCheckSpec::occopus_default();
        assert!(d.has_checks());
        let mut off = d.clone();
        off.section.insert("ping".into(), Value::Bool(false));
        assert!(!off.has_checks());
        off.section.insert("ports".into(), serde_json::json!([80]));
        assert!(off.has_checks());
    }
}
