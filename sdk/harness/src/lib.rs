//! Test kit for plugin authors: run a built plugin component (`.wasm`) in the real
//! Occopus runtime — same sandbox, limits, schema checks and reachability rules — but
//! against a **mock host**: scripted HTTP answers (every request is recorded), fake local
//! processes and files, and a fixed clock whose `sleep` returns at once. Then call
//! `create`/`state`/`destroy`/`check`/... directly and assert on the results and on what
//! the plugin asked the host to do.
//!
//! Owns: [`Harness`] (loads one component) and [`MockHost`] (the scripted
//! [`HostServices`](occopus_runtime::HostServices)). Must not: perform real network or
//! process effects through the host imports; the only real IO of its own is reading the
//! component and a private compile cache in a temporary directory.
//!
//! Every capability the plugin *requests* is granted; endpoints still have to be named in
//! the section (or requested) exactly as in production, so a denied request in the
//! harness is a denied request in production. Connections the plugin opens itself with
//! `std::net` (WASI sockets, e.g. a database login) are not mocked: they pass the same
//! address check and then reach the real network, so point them at listeners the test
//! starts on loopback.
//!
//! The guide is the "Test a built component" section of `docs/write-a-plugin.md`.
//!
//! # Example
//!
//! ```no_run
//! use occopus_sdk_harness::Harness;
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Built with `cargo xtask build-plugins` (or `cargo build --target wasm32-wasip2`).
//! let h = Harness::load("target/plugins/my-cloud.wasm").await?;
//! h.mock().respond("POST", "https://api.example.test/servers", 201, r#"{"id": "srv-1"}"#);
//! h.mock().respond("GET", "https://api.example.test/servers/srv-1", 200, r#"{"status": "ACTIVE"}"#);
//!
//! let section = json!({"endpoint": "https://api.example.test", "flavor": "small"});
//! let instance = h.create(section.clone()).await?;
//! assert_eq!(instance["id"], "srv-1");
//! let state = h.state(section, instance).await?;
//! assert_eq!(state.status, occopus_model::status::NodeStatus::Ready);
//!
//! let sent = h.mock().requests();
//! assert_eq!(sent[0].method, "POST");
//! assert!(sent[0].body_text().contains("small"));
//! # Ok(()) }
//! ```

mod mock;

pub use mock::{MockHost, RecordedRequest};
pub use occopus_runtime::host::{ProcessHandle, ProcessStatus, SpawnRequest};

use occopus_model::ids::{InfraId, NodeId, NodeName};
use occopus_model::instance::Addresses;
use occopus_model::plugin::{
    ConfigManager, CreateRequest, HealthChecker, HealthReport, HealthRequest, InstanceRef,
    NodeContext, PluginError, PluginHost, PluginInfo, PluginKind, ResourceHandler, ResourceState,
};
use occopus_model::secret::Secret;
use occopus_runtime::{Limits, Runtime, RuntimeConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a component could not be put under test.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot prepare the harness: {0}")]
    Setup(String),
    #[error("the runtime refused the component: {0}")]
    Refused(String),
}

/// Options for [`Harness::load_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Limits applied to the plugin (defaults: the production defaults).
    pub limits: Limits,
    /// Credentials handed to resource-handler calls made through the convenience methods.
    pub credentials: Option<Value>,
    /// The fixed clock's time, Unix milliseconds.
    pub now_unix_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            credentials: None,
            now_unix_ms: 1_700_000_000_000,
        }
    }
}

/// One plugin component loaded against a [`MockHost`].
pub struct Harness {
    runtime: Runtime,
    mock: Arc<MockHost>,
    info: PluginInfo,
    credentials: Option<Value>,
    _scratch: tempfile::TempDir,
}

impl Harness {
    /// Load `component` with default [`Options`].
    pub async fn load(component: impl AsRef<Path>) -> Result<Self, HarnessError> {
        Self::load_with(component, Options::default()).await
    }

    /// Load `component` with `options`.
    pub async fn load_with(
        component: impl AsRef<Path>,
        options: Options,
    ) -> Result<Self, HarnessError> {
        let component = component.as_ref();
        let scratch = tempfile::tempdir().map_err(|e| HarnessError::Setup(e.to_string()))?;
        let dir = scratch.path().join("plugins");
        std::fs::create_dir(&dir).map_err(|e| HarnessError::Setup(e.to_string()))?;
        let name = component
            .file_name()
            .ok_or_else(|| HarnessError::Setup(format!("{} is not a file", component.display())))?;
        std::fs::copy(component, dir.join(name))
            .map_err(|e| HarnessError::Setup(format!("{}: {e}", component.display())))?;
        let mock = Arc::new(MockHost::new(options.now_unix_ms));
        let config = RuntimeConfig {
            plugin_dirs: vec![dir],
            builtin_dirs: false,
            env_plugin_path: false,
            cache_dir: Some(scratch.path().join("cache")),
            work_root: None,
            limits: options.limits,
            max_live_instances: 16,
            grant_all_requested: true,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::load_with_services(config, mock.clone())
            .await
            .map_err(|e| HarnessError::Setup(e.to_string()))?;
        if let Some(e) = runtime.load_errors().first() {
            return Err(HarnessError::Refused(e.message.clone()));
        }
        let info = runtime.plugins().into_iter().next().ok_or_else(|| {
            HarnessError::Refused(format!("{} holds no plugin", component.display()))
        })?;
        Ok(Self {
            runtime,
            mock,
            info,
            credentials: options.credentials,
            _scratch: scratch,
        })
    }

    /// The scripted host: add HTTP answers, read recorded requests, inspect fake files and
    /// processes, move the clock.
    pub fn mock(&self) -> &MockHost {
        &self.mock
    }

    /// What the plugin said about itself (and what the runtime decided).
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The runtime, for calls the convenience methods do not cover (`check_section`, ...).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The plugin's first section type.
    pub fn type_name(&self) -> &str {
        self.info
            .types
            .first()
            .map(|t| t.name.as_str())
            .unwrap_or_default()
    }

    fn wrong_kind(&self, wanted: PluginKind) -> PluginError {
        PluginError::Internal(format!(
            "plugin `{}` is a {}, not a {wanted}",
            self.info.name, self.info.kind
        ))
    }

    /// The plugin as a resource handler.
    pub fn resource_handler(&self) -> Result<Arc<dyn ResourceHandler>, PluginError> {
        self.runtime
            .resource_handler(self.type_name())
            .map_err(|_| self.wrong_kind(PluginKind::ResourceHandler))
    }

    /// The plugin as a health checker.
    pub fn health_checker(&self) -> Result<Arc<dyn HealthChecker>, PluginError> {
        self.runtime
            .health_checker(self.type_name())
            .map_err(|_| self.wrong_kind(PluginKind::HealthChecker))
    }

    /// The plugin as a config manager.
    pub fn config_manager(&self) -> Result<Arc<dyn ConfigManager>, PluginError> {
        self.runtime
            .config_manager(self.type_name())
            .map_err(|_| self.wrong_kind(PluginKind::ConfigManager))
    }

    /// The node every convenience call is about.
    pub fn node() -> NodeContext {
        NodeContext {
            infra_id: InfraId::new("test-infra"),
            infra_name: "harness".into(),
            node_name: NodeName::new_unchecked("node"),
            node_id: NodeId::new("test-node-1"),
            user_id: None,
        }
    }

    fn secret(&self) -> Option<Secret<Value>> {
        self.credentials.clone().map(Secret::new)
    }

    /// A create request for `resource` on [`Harness::node`], with the harness credentials.
    pub fn create_request(&self, resource: Value) -> CreateRequest {
        CreateRequest {
            node: Self::node(),
            type_name: self.type_name().to_string(),
            resource,
            context: None,
            attributes: Value::Null,
            credentials: self.secret(),
        }
    }

    /// An instance reference for what `create` returned.
    pub fn instance_ref(&self, resource: Value, instance: Value) -> InstanceRef {
        InstanceRef {
            node: Self::node(),
            type_name: self.type_name().to_string(),
            resource,
            credentials: self.secret(),
            instance,
        }
    }

    /// `create` with the section `resource`.
    pub async fn create(&self, resource: Value) -> Result<Value, PluginError> {
        self.resource_handler()?
            .create(&self.create_request(resource))
            .await
    }

    /// `state` of an instance `create` returned.
    pub async fn state(
        &self,
        resource: Value,
        instance: Value,
    ) -> Result<ResourceState, PluginError> {
        self.resource_handler()?
            .state(&self.instance_ref(resource, instance))
            .await
    }

    /// `addresses` of an instance.
    pub async fn addresses(
        &self,
        resource: Value,
        instance: Value,
    ) -> Result<Addresses, PluginError> {
        self.resource_handler()?
            .addresses(&self.instance_ref(resource, instance))
            .await
    }

    /// `destroy` an instance.
    pub async fn destroy(&self, resource: Value, instance: Value) -> Result<(), PluginError> {
        self.resource_handler()?
            .destroy(&self.instance_ref(resource, instance))
            .await
    }

    /// One health `check` of `section` against a node at `address`.
    pub async fn check(&self, section: Value, address: &str) -> Result<HealthReport, PluginError> {
        let req = HealthRequest {
            node: Self::node(),
            type_name: self.type_name().to_string(),
            section,
            addresses: Addresses {
                primary: Some(address.to_string()),
                private: Some(address.to_string()),
                all: vec![address.to_string()],
            },
        };
        self.health_checker()?.check(&req).await
    }
}

/// Where `cargo build --target wasm32-wasip2 --profile <profile>` puts the component of
/// the crate whose library is `lib_name`, under `target_dir`.
pub fn component_path(target_dir: &Path, profile: &str, lib_name: &str) -> PathBuf {
    target_dir
        .join("wasm32-wasip2")
        .join(profile)
        .join(format!("{}.wasm", lib_name.replace('-', "_")))
}
