//! The three plugin traits a plugin author implements, one per plugin kind, mirroring
//! Occopus's plugin contracts. Export an implementation with the matching macro
//! ([`export_resource_handler!`](crate::export_resource_handler!),
//! [`export_health_checker!`](crate::export_health_checker!),
//! [`export_config_manager!`](crate::export_config_manager!)).
//!
//! Every call is stateless: the host may run several instances of a plugin at once and
//! may discard an instance between any two calls, so everything a later call needs goes
//! into the instance data `create` returns. The plugin value itself is built with
//! `Default` for each call.

use crate::error::Result;
use crate::metadata::Metadata;
use crate::request::{CreateRequest, HealthRequest, InfraRequest, InstanceRef, NodeRequest};
use crate::types::{Addresses, HealthReport, NodeStatus, ResourceState};
use serde_json::Value;

/// A cloud backend (Occopus's resource handler).
pub trait ResourceHandler {
    /// Describe the plugin: name, version, handled types with their JSON Schemas,
    /// capabilities. Pure; called once at load.
    fn metadata(&self) -> Metadata;
    /// Check a rendered section beyond its JSON Schema (which the host has already
    /// checked). Must not reach the network. Default: accept.
    fn validate(&self, _type_name: &str, _section: &Value) -> Result<()> {
        Ok(())
    }
    /// Create the instance, or adopt the one already made for `req.node.node_id` (the
    /// idempotency key). Returns instance data: any JSON later calls need.
    fn create(&self, req: &CreateRequest) -> Result<Value>;
    /// Look for an instance made for `req.node.node_id` without creating anything, so a
    /// resumed operation adopts it. Default: nothing is ever found, which is only right
    /// for backends that keep nothing outside the orchestrator.
    fn find(&self, _req: &CreateRequest) -> Result<Option<Value>> {
        Ok(None)
    }
    /// The resource's own status: pending while starting, ready once running, shutdown
    /// when stopped or gone, temp-failed when it may recover, failed when it will not.
    fn state(&self, inst: &InstanceRef) -> Result<ResourceState>;
    /// Where the instance is.
    fn addresses(&self, inst: &InstanceRef) -> Result<Addresses>;
    /// Destroy the instance. Idempotent: an instance already gone is success.
    fn destroy(&self, inst: &InstanceRef) -> Result<()>;
    /// Cost so far, where the backend knows it. Default: unknown.
    fn cost(&self, _inst: &InstanceRef) -> Result<Option<f64>> {
        Ok(None)
    }
}

/// A health checker: decides whether a node is ready to serve its dependents.
pub trait HealthChecker {
    /// Describe the plugin. Pure; called once at load.
    fn metadata(&self) -> Metadata;
    /// Check a rendered section beyond its JSON Schema. Default: accept.
    fn validate(&self, _type_name: &str, _section: &Value) -> Result<()> {
        Ok(())
    }
    /// Run the checks once. A failed check is a report with status `Pending` (the engine
    /// polls again until the section's timeout) or `Failed` (no point in waiting); an
    /// `Err` means the check itself could not run.
    fn check(&self, req: &HealthRequest) -> Result<HealthReport>;
}

/// A config manager (Occopus's contract: Chef, Puppet, ...). The engine calls
/// `register_node` before the resource is created and waits for `node_state` to be ready
/// before running health checks.
pub trait ConfigManager {
    /// Describe the plugin. Pure; called once at load.
    fn metadata(&self) -> Metadata;
    /// Check a rendered section beyond its JSON Schema. Default: accept.
    fn validate(&self, _type_name: &str, _section: &Value) -> Result<()> {
        Ok(())
    }
    /// Prepare the infrastructure-wide environment.
    fn create_infrastructure(&self, req: &InfraRequest) -> Result<()>;
    /// Remove it. Idempotent.
    fn drop_infrastructure(&self, req: &InfraRequest) -> Result<()>;
    /// Whether it exists.
    fn infrastructure_exists(&self, req: &InfraRequest) -> Result<bool>;
    /// Register a node instance.
    fn register_node(&self, req: &NodeRequest) -> Result<()>;
    /// Unregister it. Idempotent.
    fn drop_node(&self, req: &NodeRequest) -> Result<()>;
    /// The node's configuration status.
    fn node_state(&self, req: &NodeRequest) -> Result<NodeStatus>;
    /// An attribute as the config manager knows it; `None` if not (yet) set.
    fn node_attribute(&self, req: &NodeRequest, attribute: &str) -> Result<Option<Value>>;
    /// Extra template data merged into the node's namespace before its
    /// contextualisation is rendered (a JSON object).
    fn resolve_attributes(&self, req: &NodeRequest) -> Result<Value>;
}
