//! Where things live and what the operator allows: the operator config file (YAML), the
//! default directories, and the search order of auth data.
//!
//! Owns: [`OperatorConfig`] (the file's schema) and [`Paths`] (state, cache, auth data,
//! plugin directories after flags, environment and config are combined). Must not: start
//! the runtime or the engine, or read auth data (it only says where it is).

use occopus_description::{Diagnostics, Input, parse_yaml};
use occopus_runtime::{Limits, PluginGrant};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variable overriding the state directory.
pub const STATE_DIR_ENV: &str = "OCCOPUS_STATE_DIR";
/// Environment variable naming the auth data file (Occopus 1.10's `--auth_data_path`).
pub const AUTH_DATA_ENV: &str = "OCCOPUS_AUTH_DATA_PATH";
/// Environment variable naming the operator config file.
pub const CONFIG_ENV: &str = "OCCOPUS_CONFIG";

/// The operator config file (`--config`, `OCCOPUS_CONFIG`, or
/// `$XDG_CONFIG_HOME/occopus/config.yaml` when it exists). Every key is optional.
///
/// ```yaml
/// state_dir: /var/lib/occopus
/// plugin_dirs: [/opt/occopus/plugins]
/// cache_dir: /var/cache/occopus/wasm
/// engine:
///   parallelism: 64
///   create_timeout_s: 1800
///   stage: true
/// limits: { memory_mb: 128, timeout_s: 30 }
/// plugins:
///   docker: { unix: [/var/run/docker.sock] }
///   ec2: { http: ["https://*.amazonaws.com"] }
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    /// State directory (below flag and `OCCOPUS_STATE_DIR`).
    pub state_dir: Option<PathBuf>,
    /// Extra plugin directories, searched before `--plugin-dir` ones.
    pub plugin_dirs: Vec<PathBuf>,
    /// Compiled-plugin cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Engine knobs.
    pub engine: EngineConfig,
    /// Default limits of every plugin.
    pub limits: Option<Limits>,
    /// Per-plugin grants and limits, by plugin name.
    pub plugins: BTreeMap<String, PluginGrant>,
}

/// The `engine:` section of the operator config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Instances in flight at once.
    pub parallelism: Option<usize>,
    /// Creation deadline of one instance, seconds.
    pub create_timeout_s: Option<u64>,
    /// Seconds to wait for another writer's lock.
    pub lock_wait_s: Option<u64>,
    /// Stage dependents while their dependencies are created (default true).
    pub stage: Option<bool>,
}

/// A broken operator config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or is not YAML.
    #[error("{0}")]
    Syntax(Diagnostics),
    /// A key is unknown or has the wrong type.
    #[error(
        "{file}: {message}\n  hint: the keys are state_dir, plugin_dirs, cache_dir, engine, limits, plugins (see docs/plugins.md)"
    )]
    Schema { file: String, message: String },
}

impl OperatorConfig {
    /// Read a config file. Relative directories in it are taken relative to the file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let value = parse_yaml(&Input::Path(path.to_path_buf())).map_err(ConfigError::Syntax)?;
        let value = if value.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            value
        };
        let mut cfg: OperatorConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let at = e.path().to_string();
            ConfigError::Schema {
                file: path.display().to_string(),
                message: if at == "." {
                    e.inner().to_string()
                } else {
                    format!("at `{at}`: {}", e.inner())
                },
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = cfg.state_dir.as_mut() {
            abs(p);
        }
        if let Some(p) = cfg.cache_dir.as_mut() {
            abs(p);
        }
        cfg.plugin_dirs.iter_mut().for_each(abs);
        Ok(cfg)
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// `$XDG_DATA_HOME/occopus`, else `~/.local/share/occopus`, else `./.occopus-state`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = env_path("XDG_DATA_HOME") {
        return d.join("occopus");
    }
    match home() {
        Some(h) => h.join(".local/share/occopus"),
        None => PathBuf::from(".occopus-state"),
    }
}

/// `$XDG_CACHE_HOME/occopus/wasm`, else `~/.cache/occopus/wasm`; `None` without a home.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = env_path("XDG_CACHE_HOME") {
        return Some(d.join("occopus/wasm"));
    }
    home().map(|h| h.join(".cache/occopus/wasm"))
}

/// The operator config found without a flag: `OCCOPUS_CONFIG`, else
/// `$XDG_CONFIG_HOME/occopus/config.yaml` (`~/.config/...`) if that file exists.
pub fn default_config_file() -> Option<PathBuf> {
    if let Some(p) = env_path(CONFIG_ENV) {
        return Some(p);
    }
    let dir = env_path("XDG_CONFIG_HOME").or_else(|| home().map(|h| h.join(".config")))?;
    let p = dir.join("occopus/config.yaml");
    p.is_file().then_some(p)
}

/// The auth data file found without a flag: `OCCOPUS_AUTH_DATA_PATH`, else
/// `~/.occopus/auth_data.yaml` (Occopus 1.10's default) if it exists.
pub fn default_auth_data() -> Option<PathBuf> {
    if let Some(p) = env_path(AUTH_DATA_ENV) {
        return Some(p);
    }
    let p = home()?.join(".occopus/auth_data.yaml");
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_config_and_resolves_relative_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.yaml");
        std::fs::write(
            &f,
            "state_dir: state\nplugin_dirs: [p1, /abs]\nengine: {parallelism: 3, stage: false}\n\
             plugins:\n  docker: {unix: [/var/run/docker.sock]}\n",
        )
        .unwrap();
        let c = OperatorConfig::read(&f).unwrap();
        assert_eq!(c.state_dir.unwrap(), dir.path().join("state"));
        assert_eq!(
            c.plugin_dirs,
            [dir.path().join("p1"), PathBuf::from("/abs")]
        );
        assert_eq!(c.engine.parallelism, Some(3));
        assert_eq!(c.engine.stage, Some(false));
        assert_eq!(c.plugins["docker"].unix, ["/var/run/docker.sock"]);
    }

    #[test]
    fn unknown_key_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.yaml");
        std::fs::write(&f, "plugins:\n  docker: {unixx: [/x]}\n").unwrap();
        let e = OperatorConfig::read(&f).unwrap_err().to_string();
        assert!(e.contains("plugins.docker"), "{e}");
        assert!(e.contains("unixx"), "{e}");
    }

    #[test]
    fn empty_file_is_defaults_and_syntax_errors_have_positions() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.yaml");
        std::fs::write(&f, "").unwrap();
        assert!(OperatorConfig::read(&f).unwrap().plugins.is_empty());
        std::fs::write(&f, "engine: [\n").unwrap();
        let e = OperatorConfig::read(&f).unwrap_err().to_string();
        assert!(e.contains("config.yaml"), "{e}");
    }
}
