//! Occopus as a library: one builder that wires descriptions (`occopus-description`), the
//! WebAssembly plugin runtime (`occopus-runtime`), the state store (`occopus-state`) and the
//! engine (`occopus-engine`). The CLI uses only this API; a REST service would too.
//!
//! Owns: defaults and search paths (state directory, plugin directories, operator config,
//! auth data, node definitions beside a description or stored by `import`), turning auth
//! data into the engine's credential source, graphs, node logs. Must not: print anything
//! (the caller renders [`Event`]s and results), or hold logic that belongs to the engine.
//!
//! ```no_run
//! # async fn demo() -> Result<(), occopus::Error> {
//! let occ = occopus::Occopus::builder()
//!     .state_dir("/tmp/occopus-state")
//!     .plugin_dir("./plugins")
//!     .open()
//!     .await?;
//! let loaded = occ.load("examples/default/infra-default.yaml".as_ref(), None).await?;
//! let mut events = occ.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(e) = events.recv().await {
//!         println!("{:?}", e.kind);
//!     }
//! });
//! let report = occ.build(&loaded, occopus::BuildOptions::default()).await?;
//! println!("{}", report.infra_id);
//! occ.destroy(&report.infra_id, false).await?;
//! # Ok(()) }
//! ```

mod config;
mod creds;
mod graph;
mod logs;

pub use config::{
    AUTH_DATA_ENV, CONFIG_ENV, ConfigError, EngineConfig, OperatorConfig, STATE_DIR_ENV,
    default_auth_data, default_cache_dir, default_config_file, default_state_dir,
};
pub use creds::AuthCredentials;
pub use graph::{GraphFormat, render as render_graph};
pub use logs::NodeLog;

pub use occopus_description::{Diagnostic, Diagnostics, Loaded, Severity};
pub use occopus_engine::{
    AfterFailure, BuildError, BuildReport, DestroyReport, EngineError, InstanceStatus, NodeFailure,
    StatusReport,
};
pub use occopus_model::event::{Event, EventKind};
pub use occopus_model::{InfraId, Plan, ResolvedInfra};
pub use occopus_runtime::{LoadError as PluginLoadError, PluginDetails};
pub use occopus_state::InfraSummary;

use occopus_description::{AuthData, LoadOptions, NodeDefSource, NodeDefs};
use occopus_engine::{CredentialSource, DestroyOptions, Engine, EngineOptions};
use occopus_model::NodeImpl;
use occopus_model::plugin::PluginHost;
use occopus_runtime::{Runtime, RuntimeConfig};
use occopus_state::{FileStore, StateStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Everything that can go wrong, each with a message fit for a terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The description, node definitions or auth data have problems (all of them listed).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The operator config file is broken.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plugin runtime could not start.
    #[error("{0}")]
    Runtime(String),
    /// The state store or the engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A build failed (what failed and what was done about it).
    #[error(transparent)]
    Build(Box<BuildError>),
    /// Something asked for does not exist (an infrastructure, a node, a plugin).
    #[error("{0}")]
    NotFound(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Self::Build(Box::new(e))
    }
}

impl From<occopus_state::StateError> for Error {
    fn from(e: occopus_state::StateError) -> Self {
        Self::Engine(EngineError::State(e))
    }
}

/// Options of one `build`.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Update (or create with this id) instead of a new infrastructure.
    pub infra_id: Option<InfraId>,
    /// Keep what was created when the build fails (default: roll back, as Occopus).
    pub keep_on_failure: bool,
    /// Instances in flight at once (overrides the config).
    pub parallelism: Option<usize>,
    /// Creation deadline per instance (overrides the config).
    pub create_timeout: Option<Duration>,
}

/// How to open an [`Occopus`].
#[derive(Debug, Clone, Default)]
pub struct Builder {
    state_dir: Option<PathBuf>,
    plugin_dirs: Vec<PathBuf>,
    config_file: Option<PathBuf>,
    no_default_config: bool,
    auth_data: Option<PathBuf>,
    no_default_auth: bool,
    cache_dir: Option<PathBuf>,
    lenient_templates: bool,
    allow_cmd: bool,
    no_builtin_plugins: bool,
    no_plugins: bool,
    parallelism: Option<usize>,
    command: Option<String>,
}

impl Builder {
    /// State directory (default: `OCCOPUS_STATE_DIR`, the config's `state_dir`, then
    /// `$XDG_DATA_HOME/occopus`).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    /// Add a plugin directory (or one `.wasm` file); repeatable.
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dirs.push(dir.into());
        self
    }
    /// Operator config file (default: `OCCOPUS_CONFIG`, then
    /// `$XDG_CONFIG_HOME/occopus/config.yaml` if present).
    pub fn config_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.config_file = Some(file.into());
        self
    }
    /// Do not look for an operator config file unless one is given.
    pub fn no_default_config(mut self) -> Self {
        self.no_default_config = true;
        self
    }
    /// Auth data file (default: `OCCOPUS_AUTH_DATA_PATH`, then `~/.occopus/auth_data.yaml`).
    pub fn auth_data(mut self, file: impl Into<PathBuf>) -> Self {
        self.auth_data = Some(file.into());
        self
    }
    /// Do not look for auth data unless a file is given.
    pub fn no_default_auth(mut self) -> Self {
        self.no_default_auth = true;
        self
    }
    /// Compiled-plugin cache directory (default: `$XDG_CACHE_HOME/occopus/wasm`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
    /// Render undefined template names as empty text, as Occopus 1.10 did.
    pub fn lenient_templates(mut self, yes: bool) -> Self {
        self.lenient_templates = yes;
        self
    }
    /// Enable the `cmd()` template function (runs commands on this machine).
    pub fn allow_cmd(mut self, yes: bool) -> Self {
        self.allow_cmd = yes;
        self
    }
    /// Skip the plugin directories next to the executable.
    pub fn no_builtin_plugins(mut self) -> Self {
        self.no_builtin_plugins = true;
        self
    }
    /// Load no plugins at all (commands that only read the state store).
    pub fn without_plugins(mut self) -> Self {
        self.no_plugins = true;
        self
    }
    /// Instances in flight at once (default 64 or the config's `engine.parallelism`).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = Some(n);
        self
    }
    /// The program the state lock names as its holder, with the operation (`occopus`:
    /// `occopus build`).
    pub fn command(mut self, what: impl Into<String>) -> Self {
        self.command = Some(what.into());
        self
    }

    /// Read the config, open the state store and load the plugins.
    pub async fn open(self) -> Result<Occopus, Error> {
        let config_file = self.config_file.clone().or_else(|| {
            if self.no_default_config {
                None
            } else {
                default_config_file()
            }
        });
        let config = match &config_file {
            Some(f) => OperatorConfig::read(f)?,
            None => OperatorConfig::default(),
        };
        let state_dir = self
            .state_dir
            .clone()
            .or_else(|| {
                std::env::var_os(STATE_DIR_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| config.state_dir.clone())
            .unwrap_or_else(default_state_dir);
        let store = FileStore::open(&state_dir).map_err(|e| {
            Error::Io(format!(
                "cannot open the state directory `{}`: {e}\n  hint: choose another with --state-dir or OCCOPUS_STATE_DIR",
                state_dir.display()
            ))
        })?;
        let store = Arc::new(store);

        let mut rc = RuntimeConfig {
            plugin_dirs: config.plugin_dirs.clone(),
            builtin_dirs: !self.no_builtin_plugins,
            cache_dir: self
                .cache_dir
                .clone()
                .or_else(|| config.cache_dir.clone())
                .or_else(default_cache_dir),
            work_root: Some(store.root().join("infras")),
            plugins: config.plugins.clone(),
            ..Default::default()
        };
        rc.plugin_dirs.extend(self.plugin_dirs.iter().cloned());
        if let Some(l) = &config.limits {
            rc.limits = l.clone();
        }
        if self.no_plugins {
            rc.plugin_dirs.clear();
            rc.builtin_dirs = false;
            rc.env_plugin_path = false;
        }
        let runtime = Runtime::load(rc)
            .await
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let runtime = Arc::new(runtime);

        let mut opts = EngineOptions {
            template: occopus_template::Options {
                undefined: if self.lenient_templates {
                    occopus_template::Undefined::Lenient
                } else {
                    occopus_template::Undefined::Strict
                },
                allow_cmd: self.allow_cmd,
            },
            command: self.command.clone().unwrap_or_else(|| "occopus".into()),
            ..Default::default()
        };
        if let Some(p) = self.parallelism.or(config.engine.parallelism) {
            opts.parallelism = p.max(1);
        }
        if let Some(s) = config.engine.create_timeout_s {
            opts.create_deadline = Duration::from_secs(s);
        }
        if let Some(s) = config.engine.lock_wait_s {
            opts.lock_wait = Duration::from_secs(s);
        }
        if let Some(stage) = config.engine.stage {
            opts.stage = stage;
        }
        let host: Arc<dyn PluginHost> = runtime.clone();
        let engine = Engine::new(host, store.clone(), opts);
        let auth_path = self.auth_data.clone().or_else(|| {
            if self.no_default_auth {
                None
            } else {
                default_auth_data()
            }
        });
        Ok(Occopus {
            engine,
            runtime,
            store,
            auth_path,
            lenient: self.lenient_templates,
            config_file,
        })
    }
}

/// An open Occopus: plugins loaded, state store open.
pub struct Occopus {
    engine: Engine,
    runtime: Arc<Runtime>,
    store: Arc<FileStore>,
    auth_path: Option<PathBuf>,
    lenient: bool,
    config_file: Option<PathBuf>,
}

impl std::fmt::Debug for Occopus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Occopus")
            .field("state_dir", &self.store.root())
            .field("auth_path", &self.auth_path)
            .finish_non_exhaustive()
    }
}

impl Occopus {
    /// Start configuring.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The state directory in use.
    pub fn state_dir(&self) -> &Path {
        self.store.root()
    }

    /// The operator config file in use, if any.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The auth data file in use, if any.
    pub fn auth_data_path(&self) -> Option<&Path> {
        self.auth_path.as_deref()
    }

    /// Receive every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.engine.subscribe()
    }

    /// Every event from now on, none lost (see [`Engine::listen`]).
    pub fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
        self.engine.listen()
    }

    /// Plugins that could not be loaded (each with its file and the reason).
    pub fn plugin_load_errors(&self) -> &[PluginLoadError] {
        self.runtime.load_errors()
    }

    /// Every loaded plugin.
    pub fn plugins(&self) -> Vec<PluginDetails> {
        self.runtime.details()
    }

    /// Load and validate a description. Node definitions come from `nodes` if given, else
    /// `nodes/node_definitions.yaml` beside the description, else what `import` stored.
    /// Sections are checked against the loaded plugins' schemas when any are loaded.
    pub async fn load(&self, infra: &Path, nodes: Option<&Path>) -> Result<Loaded, Error> {
        let source = match nodes {
            Some(f) => NodeDefSource::File(f.to_path_buf()),
            None => {
                let beside = infra
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("nodes/node_definitions.yaml");
                if beside.exists() {
                    NodeDefSource::Beside
                } else {
                    match self.stored_node_defs().await? {
                        Some(d) => NodeDefSource::Stored(d),
                        None => NodeDefSource::Beside,
                    }
                }
            }
        };
        let mut opts = LoadOptions::new(infra)
            .with_nodes(source)
            .lenient(self.lenient);
        if let Some(a) = &self.auth_path {
            opts = opts.with_auth(a.as_path());
        }
        let host: Option<&dyn PluginHost> = if self.runtime.details().is_empty() {
            None
        } else {
            Some(self.runtime.as_ref())
        };
        occopus_description::load(&opts, host).map_err(Error::Invalid)
    }

    async fn stored_node_defs(&self) -> Result<Option<NodeDefs>, Error> {
        let types = self.store.list_node_defs().await?;
        if types.is_empty() {
            return Ok(None);
        }
        let mut defs = NodeDefs::default();
        for t in types {
            if let Some(v) = self.store.get_node_defs(&t).await? {
                let impls: Vec<NodeImpl> = serde_json::from_value(v).map_err(|e| {
                    Error::Io(format!(
                        "stored node definitions of `{t}` are unreadable ({e}); import them again with `occopus import FILE`"
                    ))
                })?;
                defs.insert(t, impls);
            }
        }
        Ok(Some(defs))
    }

    /// Validate a node definition file and store its definitions (Occopus's
    /// `occopus-import`). Returns the node types stored and the warnings.
    pub async fn import(&self, file: &Path) -> Result<(Vec<String>, Diagnostics), Error> {
        let host: Option<&dyn PluginHost> = if self.runtime.details().is_empty() {
            None
        } else {
            Some(self.runtime.as_ref())
        };
        let parsed =
            occopus_description::parse_node_definitions(file, host).map_err(Error::Invalid)?;
        let mut types = Vec::new();
        for t in parsed.defs.types() {
            let impls = parsed.defs.get(t).unwrap_or_default();
            let v = serde_json::to_value(impls).map_err(|e| Error::Io(e.to_string()))?;
            self.store.put_node_defs(t, &v).await?;
            types.push(t.to_string());
        }
        Ok((types, parsed.warnings))
    }

    fn credentials(&self, loaded: Option<&Loaded>) -> Result<Arc<dyn CredentialSource>, Error> {
        let auth = match (loaded, &self.auth_path) {
            (Some(l), _) => l.auth.clone(),
            (None, Some(p)) => occopus_description::parse_auth_data(p).map_err(Error::Invalid)?,
            (None, None) => AuthData::default(),
        };
        Ok(Arc::new(AuthCredentials::new(auth)))
    }

    /// What `build` would do (touches nothing).
    pub async fn plan(&self, loaded: &Loaded, infra_id: Option<&InfraId>) -> Result<Plan, Error> {
        if let Some(id) = infra_id {
            self.require(id).await?;
        }
        Ok(self.engine.plan(&loaded.infra, infra_id).await?)
    }

    /// Build a new infrastructure, or update `options.infra_id`.
    pub async fn build(
        &self,
        loaded: &Loaded,
        options: BuildOptions,
    ) -> Result<BuildReport, Error> {
        let creds = self.credentials(Some(loaded))?;
        let opts = occopus_engine::BuildOptions {
            infra_id: options.infra_id,
            keep_on_failure: options.keep_on_failure,
            description_path: None,
            parallelism: options.parallelism,
            create_deadline: options.create_timeout,
        };
        Ok(self
            .engine
            .build_shared(loaded.infra.clone(), creds, opts)
            .await?)
    }

    /// [`build`](Self::build), recording where the description came from.
    pub async fn build_file(
        &self,
        loaded: &Loaded,
        description: &Path,
        options: BuildOptions,
    ) -> Result<BuildReport, Error> {
        let creds = self.credentials(Some(loaded))?;
        let opts = occopus_engine::BuildOptions {
            infra_id: options.infra_id,
            keep_on_failure: options.keep_on_failure,
            description_path: Some(description.display().to_string()),
            parallelism: options.parallelism,
            create_deadline: options.create_timeout,
        };
        Ok(self
            .engine
            .build_shared(loaded.infra.clone(), creds, opts)
            .await?)
    }

    /// Drop every node of an infrastructure and forget it. `missing_ok`: an unknown id is
    /// not an error.
    pub async fn destroy(&self, id: &InfraId, missing_ok: bool) -> Result<DestroyReport, Error> {
        let creds = self.credentials(None)?;
        Ok(self
            .engine
            .destroy(id, creds, DestroyOptions { missing_ok })
            .await?)
    }

    /// Live status of every node instance (asks the plugins).
    pub async fn status(&self, id: &InfraId) -> Result<StatusReport, Error> {
        let creds = self.credentials(None)?;
        Ok(self.engine.status(id, creds).await?)
    }

    /// Every infrastructure in the state store.
    pub async fn list(&self) -> Result<Vec<InfraSummary>, Error> {
        Ok(self.engine.list().await?)
    }

    async fn require(&self, id: &InfraId) -> Result<occopus_state::InfraState, Error> {
        self.engine
            .recorded(id)
            .await?
            .ok_or_else(|| Error::Engine(EngineError::NotFound(id.clone())))
    }

    /// The node names recorded for an infrastructure, in the order first recorded.
    pub async fn status_nodes(&self, id: &InfraId) -> Result<Vec<occopus_model::NodeName>, Error> {
        let state = self.require(id).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(state
            .instances
            .iter()
            .filter(|i| seen.insert(i.node_name.as_str()))
            .map(|i| i.node_name.clone())
            .collect())
    }

    /// The log files of a node (by name: every instance; or one instance by node id) of an
    /// infrastructure, as written by backends that run nodes on this machine (`local`).
    pub async fn logs(&self, id: &InfraId, node: &str) -> Result<Vec<NodeLog>, Error> {
        let state = self.require(id).await?;
        let dir = self.store.infra_dir(id)?.join("nodes");
        logs::find(&state, &dir, id, node)
    }
}
