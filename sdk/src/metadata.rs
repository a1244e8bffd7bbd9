//! [`Metadata`]: what a plugin says about itself (name, version, handled section types
//! with their JSON Schemas, requested capabilities), and the [`metadata!`](crate::metadata!)
//! shorthand that fills name-independent fields from `Cargo.toml`.
//!
//! Metadata is pure data: building it must not call the host (the host calls
//! `metadata()` once, at load time, before granting anything).

use serde_json::Value;

/// One section `type` a plugin handles, with the JSON Schema of that section.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeInfo {
    /// The `type` value (`ec2`, `docker`, `basic`).
    pub name: String,
    /// JSON Schema of the whole section (including its `type` key).
    pub schema: Value,
}

/// What a plugin says about itself. Build it with [`Metadata::new`] or
/// [`metadata!`](crate::metadata!).
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// Unique plugin name, `[a-z0-9-]+`.
    pub name: String,
    /// Plugin version (semver).
    pub version: String,
    /// One line for `occopus plugins list`.
    pub description: String,
    /// Section types handled.
    pub types: Vec<TypeInfo>,
    /// Capabilities requested: `process`, `ping`, `http:<scheme>://<host>[:<port>]`,
    /// `unix:<socket path>`, `tcp:<host>:<port>`.
    pub capabilities: Vec<String>,
}

impl Metadata {
    /// A plugin called `name` at `version`, handling nothing yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            types: Vec::new(),
            capabilities: Vec::new(),
        }
    }
    /// Set the one-line description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
    /// Handle section type `name`, whose sections follow `schema`.
    pub fn handles(mut self, name: impl Into<String>, schema: Value) -> Self {
        self.types.push(TypeInfo {
            name: name.into(),
            schema,
        });
        self
    }
    /// Request a capability (`ping`, `http:https://*.amazonaws.com`, `process`...).
    /// Endpoints written in the plugin's own section and auth entry need none.
    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.push(capability.into());
        self
    }
}

/// [`Metadata`] named `$name`, with the version and description of the calling crate's
/// `Cargo.toml`:
///
/// ```
/// let m = occopus_sdk::metadata!("hello");
/// assert_eq!(m.name, "hello");
/// assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
/// ```
#[macro_export]
macro_rules! metadata {
    ($name:expr) => {
        $crate::Metadata::new($name, ::core::env!("CARGO_PKG_VERSION"))
            .description(::core::env!("CARGO_PKG_DESCRIPTION"))
    };
}
