//! The per-instance template namespace.

use occopus_model::Addresses;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One existing instance as templates see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    pub node_id: String,
    pub addresses: Addresses,
}

/// Where `getip` and friends look up other nodes' instances.
pub trait Lookup: Send + Sync {
    /// Instances of node `name` that exist now, oldest first; `None` if the
    /// infrastructure has no node of that name.
    fn instances(&self, name: &str) -> Option<Vec<InstanceView>>;
    /// Every node name, in description order (used by the lenient fallback of
    /// `getip(<undefined>)` and for hints).
    fn node_names(&self) -> Vec<String>;
}

/// A lookup that knows no instances: for rendering where no other node exists yet.
#[derive(Debug, Default, Clone)]
pub struct NoInstances {
    pub names: Vec<String>,
}

impl Lookup for NoInstances {
    fn instances(&self, name: &str) -> Option<Vec<InstanceView>> {
        self.names.iter().any(|n| n == name).then(Vec::new)
    }
    fn node_names(&self) -> Vec<String> {
        self.names.clone()
    }
}

/// The names a template can use. Occopus's cloud-init namespace is `node_id`, the compiled
/// node description (`name`, `type`, `scaling`, `filter`, `infra_id`, `infra_name`,
/// `user_id`, `mappings`, `variables`) and the raw sections of the chosen implementation
/// (`resource`, `contextualisation`, `config_management`, `health_check`); put the latter
/// in `extra`. Health-check strings additionally see `ip` and `instance_data`.
#[derive(Clone)]
pub struct Namespace {
    pub vars: Map<String, Value>,
    pub lookup: Arc<dyn Lookup>,
}

impl Namespace {
    pub fn new(lookup: Arc<dyn Lookup>) -> Self {
        Self {
            vars: Map::new(),
            lookup,
        }
    }

    /// Set one name (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.vars.insert(key.to_string(), value.into());
        self
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.vars.insert(key.to_string(), value.into());
    }

    /// Whether a top-level name is defined (or is one of the built-in functions).
    pub fn defines(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}
