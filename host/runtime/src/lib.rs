//! The WebAssembly plugin runtime: loads sandboxed plugin components (ABI in `wit/`,
//! package `occopus:plugin@0.1.0`) with wasmtime and implements the engine's plugin traits
//! ([`occopus_model::plugin::PluginHost`] and the per-kind traits) on top of them.
//!
//! Owns: discovery (`loader`), the compiled-artifact cache (`cache`), the engine and its
//! epoch ticker (`engine`), per-plugin instance pools with time and memory limits
//! (`pool`), capabilities and per-call reachability (`grants`), host imports and the
//! services behind them (`host`), section schema checks (`schema`) and the trait adapters
//! (`adapter`).
//!
//! Must not: depend on `occopus-description` or the engine; leak wasmtime types through
//! the plugin traits; let a plugin reach anything its section, its grants or (for health
//! checks) its node do not name; let a broken plugin take the host down.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use occopus_model::plugin::PluginHost;
//! let rt = occopus_runtime::Runtime::load(occopus_runtime::RuntimeConfig {
//!     plugin_dirs: vec!["./plugins".into()],
//!     cache_dir: Some("/var/cache/occopus/wasm".into()),
//!     ..Default::default()
//! })
//! .await?;
//! for e in rt.load_errors() {
//!     eprintln!("plugin not loaded: {e}");
//! }
//! let ec2 = rt.resource_handler("ec2")?;
//! # let _ = ec2; Ok(()) }
//! ```

mod adapter;
pub mod bindings;
pub mod cache;
pub mod config;
mod convert;
pub mod engine;
pub mod grants;
pub mod host;
mod loader;
mod pool;
pub mod schema;
mod state;
mod stdio;

pub use cache::CacheOutcome;
pub use config::{Limits, LimitsSummary, PluginGrant, RuntimeConfig};
pub use host::{HostServices, RealHost};
pub use loader::{LoadError, builtin_dirs_for};

use loader::LoadedPlugin;
use occopus_model::plugin::{
    ConfigManager, FieldError, HealthChecker, NoPlugin, PluginHost, PluginInfo, PluginKind,
    ResourceHandler,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A failure that stops the whole runtime from starting (a single broken plugin never
/// does: see [`Runtime::load_errors`]).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot set up host services: {0}")]
    Services(String),
}

/// Everything `occopus plugins list` / `plugins inspect` show about one loaded plugin:
/// [`PluginInfo`] (name, version, kind, ABI, types with their section schemas, requested
/// and granted capabilities, digest, source) plus what the runtime decided.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginDetails {
    #[serde(flatten)]
    pub info: PluginInfo,
    /// The component file.
    pub path: PathBuf,
    /// Whether the compiled form came from the cache.
    pub cache: CacheOutcome,
    /// Time, memory and concurrency limits in force (grant merged over the defaults).
    pub limits: LimitsSummary,
}

/// The whole picture for `occopus plugins list`: loaded plugins, refused files, and where
/// the runtime looked. Serialisable as it is for `--output json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inventory {
    /// The ABI this host speaks (`occopus:plugin@0.1.0`).
    pub abi: String,
    /// Directories searched, in order (built-in, `OCCOPUS_PLUGIN_PATH`, `--plugin-dir`).
    pub search_path: Vec<PathBuf>,
    /// The compiled-artifact cache directory, if enabled.
    pub cache_dir: Option<PathBuf>,
    /// Loaded plugins, in load order.
    pub plugins: Vec<PluginDetails>,
    /// Files that were found but not loaded, and why.
    pub errors: Vec<LoadError>,
}

struct Inner {
    plugins: Vec<Arc<LoadedPlugin>>,
    /// Per kind, section `type` → index into `plugins`.
    routes: HashMap<PluginKind, HashMap<String, usize>>,
    errors: Vec<LoadError>,
    cache_dir: Option<PathBuf>,
    search_path: Vec<PathBuf>,
}

/// Counts of a plugin's staged calls ([`ResourceHandler::create_staged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StagingStats {
    /// Calls whose guest ran up to its first host call before its turn came.
    pub ahead: u64,
    /// Calls that gave their instance back to a call in turn (they ran at their turn,
    /// from the start).
    pub evicted: u64,
}

/// The loaded plugins. Cheap to clone; implements [`PluginHost`].
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field(
                "plugins",
                &self
                    .inner
                    .plugins
                    .iter()
                    .map(|p| &p.info.name)
                    .collect::<Vec<_>>(),
            )
            .field("errors", &self.inner.errors.len())
            .finish()
    }
}

impl Runtime {
    /// Discover and load every plugin with the production host services.
    pub async fn load(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let services = RealHost::new(config.work_root.clone()).map_err(RuntimeError::Services)?;
        Self::load_with_services(config, Arc::new(services)).await
    }

    /// Discover and load every plugin, with `services` performing the host imports' effects
    /// (test harnesses pass scripted ones; policy checks stay in the runtime).
    pub async fn load_with_services(
        config: RuntimeConfig,
        services: Arc<dyn HostServices>,
    ) -> Result<Self, RuntimeError> {
        let engine = engine::build_engine(config.pool_size())
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        engine::start_ticker(&engine)
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        let linker = loader::linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = cache::ArtifactCache::new(&engine, config.cache_dir.as_deref());
        let shared = Arc::new(state::RuntimeShared {
            services,
            limits: config.limits.clone(),
            work_root: config.work_root.clone(),
        });
        let mut errors = Vec::new();
        let search_path = loader::search_path(&config)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let files = loader::discover(&config, &mut errors);
        let ld = loader::Loader {
            engine: &engine,
            linker: &linker,
            cache: &cache,
            config: &config,
            runtime: shared,
        };
        let mut plugins: Vec<Arc<LoadedPlugin>> = Vec::new();
        let mut routes = HashMap::new();
        for file in files {
            let p = match ld.load(&file).await {
                Ok(p) => p,
                Err(message) => {
                    tracing::warn!(plugin = %file.display(), "plugin not loaded: {message}");
                    errors.push(LoadError {
                        path: file,
                        message,
                    });
                    continue;
                }
            };
            if let Some(other) = plugins.iter().find(|o| o.info.name == p.info.name) {
                if other.info.digest == p.info.digest {
                    tracing::debug!(plugin = %p.info.name, copy = %file.display(), "identical copy of a loaded plugin skipped");
                } else {
                    errors.push(LoadError {
                        message: format!(
                            "plugin `{}` is already loaded from {} (a different build); remove one of the two files",
                            p.info.name,
                            other.path.display()
                        ),
                        path: file,
                    });
                }
                continue;
            }
            let clash: Vec<String> = p
                .info
                .types
                .iter()
                .filter_map(|t| {
                    routes
                        .get(&p.info.kind)
                        .and_then(|r: &HashMap<String, usize>| r.get(&t.name))
                        .map(|&i: &usize| {
                        let o = &plugins[i];
                        format!(
                            "type `{}` ({}) is claimed by both {} (plugin `{}`) and {} (plugin `{}`)",
                            t.name,
                            p.info.kind,
                            o.path.display(),
                            o.info.name,
                            file.display(),
                            p.info.name
                        )
                    })
                })
                .collect();
            if !clash.is_empty() {
                errors.push(LoadError {
                    message: format!(
                        "{}; the first one is kept, remove or rename one of them",
                        clash.join("; ")
                    ),
                    path: file,
                });
                continue;
            }
            let idx = plugins.len();
            for t in &p.info.types {
                routes
                    .entry(p.info.kind)
                    .or_default()
                    .insert(t.name.clone(), idx);
            }
            tracing::info!(plugin = %p.info.name, version = %p.info.version, kind = %p.info.kind, cache = ?p.cache, path = %file.display(), "plugin loaded");
            plugins.push(Arc::new(p));
        }
        for name in config.plugins.keys() {
            if !plugins.iter().any(|p| &p.info.name == name) {
                tracing::warn!(plugin = %name, "the operator config has a `plugins.{name}` entry, but no such plugin is loaded");
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                plugins,
                routes,
                errors,
                cache_dir: cache.dir().map(|d| d.to_path_buf()),
                search_path,
            }),
        })
    }

    /// Plugins that were found but not loaded, and why.
    pub fn load_errors(&self) -> &[LoadError] {
        &self.inner.errors
    }

    /// Every loaded plugin with its file, cache outcome and limits.
    pub fn details(&self) -> Vec<PluginDetails> {
        self.inner
            .plugins
            .iter()
            .map(|p| Self::details_of(p))
            .collect()
    }

    fn details_of(p: &LoadedPlugin) -> PluginDetails {
        PluginDetails {
            info: p.info.clone(),
            path: p.path.clone(),
            cache: p.cache,
            limits: p.pool.shared().limits.summary(),
        }
    }

    /// `occopus plugins list`: every loaded plugin, every refused file, the search path
    /// and the cache directory.
    pub fn inventory(&self) -> Inventory {
        Inventory {
            abi: format!("{}@{}", loader::PACKAGE, occopus_model::plugin::ABI_VERSION),
            search_path: self.inner.search_path.clone(),
            cache_dir: self.inner.cache_dir.clone(),
            plugins: self.details(),
            errors: self.inner.errors.clone(),
        }
    }

    /// `occopus plugins inspect NAME`: one loaded plugin by name, or by a section type it
    /// handles (`ec2`) when no plugin has that name.
    pub fn inspect(&self, name_or_type: &str) -> Option<PluginDetails> {
        let ps = &self.inner.plugins;
        ps.iter()
            .find(|p| p.info.name == name_or_type)
            .or_else(|| {
                ps.iter()
                    .find(|p| p.info.types.iter().any(|t| t.name == name_or_type))
            })
            .map(|p| Self::details_of(p))
    }

    fn by_name(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.inner.plugins.iter().find(|p| p.info.name == name)
    }

    /// One loaded plugin by name.
    pub fn plugin(&self, name: &str) -> Option<PluginInfo> {
        self.by_name(name).map(|p| p.info.clone())
    }

    /// Instantiate a fresh instance of plugin `name` and drop it, outside the pool. For
    /// benchmarks and diagnostics; engine code never needs it.
    pub async fn instantiate_once(&self, name: &str) -> Result<(), String> {
        let p = self
            .by_name(name)
            .ok_or_else(|| format!("no plugin named `{name}` is loaded"))?;
        p.pool.instantiate_and_drop().await
    }

    /// How many idle (pooled) instances plugin `name` has now. For tests and diagnostics.
    pub fn idle_instances(&self, name: &str) -> Option<usize> {
        self.by_name(name).map(|p| p.pool.idle_count())
    }

    /// What became of plugin `name`'s staged calls so far. For tests and diagnostics.
    pub fn staging_stats(&self, name: &str) -> Option<StagingStats> {
        use std::sync::atomic::Ordering::Relaxed;
        self.by_name(name).map(|p| {
            let s = p.pool.shared();
            StagingStats {
                ahead: s.staged_ahead.load(Relaxed),
                evicted: s.staged_evicted.load(Relaxed),
            }
        })
    }

    /// The compiled-artifact cache directory in use, if any.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.inner.cache_dir.as_deref()
    }

    fn route(&self, kind: PluginKind, type_name: &str) -> Result<&Arc<LoadedPlugin>, NoPlugin> {
        let of_kind = self.inner.routes.get(&kind);
        match of_kind.and_then(|r| r.get(type_name)) {
            Some(&i) => Ok(&self.inner.plugins[i]),
            None => {
                let mut known: Vec<String> = of_kind
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                known.sort();
                Err(NoPlugin {
                    kind,
                    type_name: type_name.to_string(),
                    known,
                })
            }
        }
    }
}

impl PluginHost for Runtime {
    fn resource_handler(&self, type_name: &str) -> Result<Arc<dyn ResourceHandler>, NoPlugin> {
        self.route(PluginKind::ResourceHandler, type_name)
            .map(|p| p.clone() as Arc<dyn ResourceHandler>)
    }

    fn health_checker(&self, type_name: &str) -> Result<Arc<dyn HealthChecker>, NoPlugin> {
        self.route(PluginKind::HealthChecker, type_name)
            .map(|p| p.clone() as Arc<dyn HealthChecker>)
    }

    fn config_manager(&self, type_name: &str) -> Result<Arc<dyn ConfigManager>, NoPlugin> {
        self.route(PluginKind::ConfigManager, type_name)
            .map(|p| p.clone() as Arc<dyn ConfigManager>)
    }

    fn check_section(
        &self,
        kind: PluginKind,
        type_name: &str,
        section: &Value,
        unrendered: bool,
    ) -> Result<Vec<FieldError>, NoPlugin> {
        let p = self.route(kind, type_name)?;
        Ok(p.schemas
            .get(type_name)
            .map(|s| s.check(section, unrendered))
            .unwrap_or_default())
    }

    fn plugins(&self) -> Vec<PluginInfo> {
        self.inner.plugins.iter().map(|p| p.info.clone()).collect()
    }

    /// Instantiate up to `count` instances of the plugin into its idle pool, in a
    /// background task (none outside a tokio runtime), within its `max_instances`. Each
    /// instance gets one cheap call, so that its first real call does not pay for the
    /// guest's start-up (constructors, first page faults). One task, not one per
    /// core: concurrent instantiations contend in the kernel (page faults, TLB
    /// shootdowns) and cost more CPU than they save.
    fn prepare(&self, kind: PluginKind, type_name: &str, count: usize) {
        let Ok(plugin) = self.route(kind, type_name) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (plugin, type_name) = (plugin.clone(), type_name.to_string());
        rt.spawn(async move {
            let started = std::time::Instant::now();
            let made = plugin.pool.prewarm(&type_name, count).await;
            tracing::debug!(target: "occopus::plugin", plugin = %plugin.info.name, asked = count, made, elapsed_ms = started.elapsed().as_millis() as u64, "prewarmed instances");
        });
    }
}
