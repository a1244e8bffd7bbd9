//! Occopus domain model: identifiers, node states, the resolved infrastructure, plans,
//! events, and the plugin traits the engine calls.
//!
//! Owns: the vocabulary every other host crate shares. Every later stage of the pipeline
//! (`Description -> ResolvedInfra -> Plan -> Executor -> State + Events`) speaks these types.
//!
//! Must not: do IO, know about YAML, files, wasmtime, tokio or the state store. The plugin
//! traits in [`plugin`] are the *only* way the engine reaches a resource handler, health
//! checker or config manager; `occopus-runtime` implements them with WebAssembly and
//! engine tests implement them with in-process fakes.

pub mod event;
pub mod ids;
pub mod infra;
pub mod instance;
pub mod plan;
pub mod plugin;
pub mod secret;
pub mod status;
pub mod suggest;

pub use ids::{InfraId, NameError, NodeId, NodeName, is_valid_name};
pub use infra::{
    Contextualisation, Edge, HealthCheckSpec, MysqlDbSpec, NodeImpl, NodeSpec, ResolvedInfra,
    Scaling,
};
pub use instance::{Addresses, InstancePhase, InstanceRecord};
pub use plan::{Action, Plan};
pub use secret::Secret;
pub use status::NodeStatus;
