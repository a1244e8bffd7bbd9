//! Runtime configuration: where plugins come from, where compiled artifacts go, the
//! operator's per-plugin grants (`plugins:` in the operator config) and the default limits.
//!
//! Owns: the serde types the facade fills from the operator config file and hands to
//! [`crate::Runtime::load`]. Must not: read files or environment variables (the facade parses
//! the operator config; [`RuntimeConfig::env_plugin_path`] only says whether the runtime may
//! consult `OCCOPUS_PLUGIN_PATH`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable with extra plugin directories, colon-separated.
pub const PLUGIN_PATH_ENV: &str = "OCCOPUS_PLUGIN_PATH";

/// Operations that may take long (a cloud creating a VM, a container image pull); they get
/// [`Limits::long_timeout_s`] by default, every other operation [`Limits::timeout_s`].
pub const LONG_OPERATIONS: &[&str] = &[
    "create",
    "destroy",
    "create-infrastructure",
    "drop-infrastructure",
    "register-node",
    "drop-node",
];

/// Everything [`crate::Runtime::load`] needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Extra plugin directories (`--plugin-dir`), searched after the built-in ones and
    /// `OCCOPUS_PLUGIN_PATH`. An entry may also name a single `.wasm` file.
    pub plugin_dirs: Vec<PathBuf>,
    /// Search the built-in directories next to the executable (see `docs/plugins.md`).
    pub builtin_dirs: bool,
    /// Consult `OCCOPUS_PLUGIN_PATH`.
    pub env_plugin_path: bool,
    /// Directory for compiled artifacts (private to this user, created `0700`). `None`
    /// compiles every plugin in memory at each start.
    pub cache_dir: Option<PathBuf>,
    /// Root of the per-node working directories of the `process` capability
    /// (`<work_root>/<infra_id>/nodes/<node_id>/`). `None` refuses process calls.
    pub work_root: Option<PathBuf>,
    /// Per-plugin grants and limits, keyed by plugin name (the operator config's
    /// `plugins:` section).
    pub plugins: BTreeMap<String, PluginGrant>,
    /// Defaults for every plugin.
    pub limits: Limits,
    /// Size of the engine's instance pool: how many plugin instances may be alive at once
    /// across all plugins (idle pooled ones included). Grown to fit the `plugins:` grants'
    /// `max_instances` (see [`RuntimeConfig::pool_size`]).
    pub max_live_instances: u32,
    /// Grant every plugin everything its metadata requests. For test harnesses only; it
    /// cannot be set from a configuration file.
    #[serde(skip)]
    pub grant_all_requested: bool,
}

impl RuntimeConfig {
    /// Live instances the engine's pool is sized for: `max_live_instances`, or more when
    /// the operator granted plugins more concurrent calls than that in total (each call in
    /// flight holds an instance), so that a grant is never silently capped by the pool.
    pub fn pool_size(&self) -> u32 {
        let granted: usize = self.plugins.values().filter_map(|g| g.max_instances).sum();
        // Room for the other plugins at their default concurrency.
        let wanted = granted.saturating_add(4 * self.limits.max_instances);
        self.max_live_instances
            .max(u32::try_from(wanted).unwrap_or(u32::MAX))
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            plugin_dirs: Vec::new(),
            builtin_dirs: true,
            env_plugin_path: true,
            cache_dir: None,
            work_root: None,
            plugins: BTreeMap::new(),
            limits: Limits::default(),
            max_live_instances: 256,
            grant_all_requested: false,
        }
    }
}

/// What the operator allows one plugin, on top of what its own section names. Every list
/// entry uses the capability grammar of `wit/README.md` without the `http:`/`tcp:`/`unix:`
/// prefix. A grant only takes effect for capabilities the plugin also requests in its
/// metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginGrant {
    /// URL patterns: `https://*.amazonaws.com`, `http://10.0.0.5:8080`, `*`.
    pub http: Vec<String>,
    /// Unix socket paths (`/var/run/docker.sock`).
    pub unix: Vec<String>,
    /// `host:port` patterns (`db.internal:5432`, `*:3306`).
    pub tcp: Vec<String>,
    /// Local processes (`occopus:plugin/process`). The `local` plugin has it by default.
    pub process: Option<bool>,
    /// ICMP echo to any host (health checkers may always ping the node they check).
    pub ping: Option<bool>,
    /// Memory cap of one instance, summed over all its memories.
    pub memory_mb: Option<u64>,
    /// Time budget of every operation, in seconds.
    pub timeout_s: Option<u64>,
    /// Time budget per operation (`create: 600`), overriding `timeout_s`.
    pub timeouts: BTreeMap<String, u64>,
    /// Concurrent calls into this plugin.
    pub max_instances: Option<usize>,
}

/// Default limits, applied where a [`PluginGrant`] says nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory cap per instance (all memories summed), MiB.
    pub memory_mb: u64,
    /// Budget of the operations in [`LONG_OPERATIONS`], seconds.
    pub long_timeout_s: u64,
    /// Budget of every other operation, seconds.
    pub timeout_s: u64,
    /// Concurrent calls per plugin.
    pub max_instances: usize,
    /// An instance is replaced by a fresh one after this many calls.
    pub recycle_after_calls: u32,
    /// Largest JSON document or message accepted from a plugin, bytes.
    pub max_output_bytes: usize,
    /// Largest HTTP request or response body, bytes.
    pub max_http_body_bytes: usize,
    /// Log lines a plugin may emit per call before further lines are dropped.
    pub max_log_lines_per_call: u32,
    /// How much of a plugin's stderr is kept per call to explain a crash, bytes.
    pub stderr_tail_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: 128,
            long_timeout_s: 60,
            timeout_s: 10,
            max_instances: 8,
            recycle_after_calls: 1000,
            max_output_bytes: 4 << 20,
            max_http_body_bytes: 16 << 20,
            max_log_lines_per_call: 500,
            stderr_tail_bytes: 8 << 10,
        }
    }
}

/// The limits in force for one plugin (its grant merged over the defaults), as
/// `plugins inspect` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsSummary {
    /// Memory cap per instance, MiB.
    pub memory_mb: u64,
    /// Concurrent calls.
    pub max_instances: usize,
    /// Budget of ordinary operations, seconds.
    pub timeout_s: u64,
    /// Budget of the operations in [`LONG_OPERATIONS`], seconds.
    pub long_timeout_s: u64,
    /// Per-operation overrides, seconds.
    pub timeouts: BTreeMap<String, u64>,
}

/// The limits that apply to one plugin after its grant is merged over the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginLimits {
    pub memory_bytes: usize,
    pub max_instances: usize,
    long_timeout: Duration,
    timeout: Duration,
    per_operation: BTreeMap<String, Duration>,
}

impl PluginLimits {
    /// Merge `grant` over `defaults`.
    pub fn new(defaults: &Limits, grant: Option<&PluginGrant>) -> Self {
        let secs = Duration::from_secs;
        let memory_mb = grant
            .and_then(|g| g.memory_mb)
            .unwrap_or(defaults.memory_mb);
        let (timeout, long_timeout) = match grant.and_then(|g| g.timeout_s) {
            Some(t) => (secs(t), secs(t)),
            None => (secs(defaults.timeout_s), secs(defaults.long_timeout_s)),
        };
        Self {
            memory_bytes: usize::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            max_instances: grant
                .and_then(|g| g.max_instances)
                .unwrap_or(defaults.max_instances)
                .max(1),
            long_timeout,
            timeout,
            per_operation: grant
                .map(|g| {
                    g.timeouts
                        .iter()
                        .map(|(op, s)| (op.clone(), secs(*s)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The merged limits in the operator config's units, for `plugins inspect`.
    pub fn summary(&self) -> LimitsSummary {
        LimitsSummary {
            memory_mb: (self.memory_bytes >> 20) as u64,
            max_instances: self.max_instances,
            timeout_s: self.timeout.as_secs(),
            long_timeout_s: self.long_timeout.as_secs(),
            timeouts: self
                .per_operation
                .iter()
                .map(|(op, d)| (op.clone(), d.as_secs()))
                .collect(),
        }
    }

    /// The time budget of one operation (a WIT function name such as `create`).
    pub fn budget(&self, operation: &str) -> Duration {
        if let Some(d) = self.per_operation.get(operation) {
            return *d;
        }
        if LONG_OPERATIONS.contains(&operation) {
            self.long_timeout
        } else {
            self.timeout
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_grows_to_fit_the_grants() {
        let mut c = RuntimeConfig::default();
        assert_eq!(c.pool_size(), 256);
        c.plugins.insert(
            "sim".into(),
            PluginGrant {
                max_instances: Some(1024),
                ..PluginGrant::default()
            },
        );
        assert_eq!(c.pool_size(), 1024 + 4 * 8);
    }

    #[test]
    fn grants_override_defaults() {
        let d = Limits::default();
        let l = PluginLimits::new(&d, None);
        assert_eq!(l.budget("create"), Duration::from_secs(60));
        assert_eq!(l.budget("state"), Duration::from_secs(10));
        assert_eq!(l.memory_bytes, 128 << 20);
        let g = PluginGrant {
            timeout_s: Some(5),
            timeouts: [("create".to_string(), 300)].into(),
            memory_mb: Some(64),
            max_instances: Some(0),
            ..Default::default()
        };
        let l = PluginLimits::new(&d, Some(&g));
        assert_eq!(l.budget("create"), Duration::from_secs(300));
        assert_eq!(l.budget("destroy"), Duration::from_secs(5));
        assert_eq!(l.memory_bytes, 64 << 20);
        assert_eq!(l.max_instances, 1);
    }

    #[test]
    fn grant_rejects_unknown_keys() {
        let e = serde_json::from_str::<PluginGrant>(r#"{"htp": []}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `htp`"), "{e}");
    }
}
