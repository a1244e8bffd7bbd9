//! Plugin discovery and loading.
//!
//! Owns: the search path (built-in directories next to the executable, then
//! `OCCOPUS_PLUGIN_PATH`, then every `--plugin-dir`), reading one component and its
//! optional sidecar manifest (`<name>.toml` pinning `sha256`), compiling it through the
//! cache, checking its exports (which kind, which ABI version) and imports (our package
//! and the inert WASI set only; `process` only with the grant), reading `metadata()`
//! once and validating it, and computing its grants and limits.
//!
//! Must not: let one broken plugin stop the others (every failure is a [`LoadError`]).

use crate::bindings::{
    config_manager as cm, health_checker as hc, host_api, resource_handler as rh,
};
use crate::cache::{ArtifactCache, CacheOutcome, sha256_hex};
use crate::config::{PLUGIN_PATH_ENV, PluginLimits, RuntimeConfig};
use crate::grants::{CallPolicy, CapabilitySet, Grants};
use crate::pool::{Bindings, InstancePool, KindPre, bound};
use crate::schema::SectionSchema;
use crate::state::{PluginShared, PluginState, RuntimeShared};
use occopus_model::plugin::{ABI_VERSION, PluginInfo, PluginKind, TypeInfo};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

/// Our WIT package name.
pub const PACKAGE: &str = "occopus:plugin";

/// Largest component file read.
const MAX_COMPONENT_BYTES: u64 = 512 << 20;

/// Host interfaces a component may import from our package.
const HOST_INTERFACES: &[&str] = &["types", "log", "http", "probe", "clock", "process"];

/// WASI packages a component may import: inert with our empty `WasiCtx` (no preopens, no
/// environment), or policed per call (sockets).
const INERT_WASI: &[&str] = &["cli", "io", "clocks", "random", "filesystem", "sockets"];

/// Why a plugin file was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadError {
    /// The component (or directory) concerned.
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for LoadError {}

/// Where a plugin directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Builtin,
    Env,
    Flag,
}

/// The built-in plugin directories for an executable at `exe`: `<exe dir>/plugins`,
/// `<exe dir>/../plugins` (so `target/plugins` serves `target/debug/occopus`) and
/// `<exe dir>/../share/occopus/plugins` (installed layout).
pub fn builtin_dirs_for(exe: &Path) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    let mut v = vec![dir.join("plugins")];
    if let Some(up) = dir.parent() {
        v.push(up.join("plugins"));
        v.push(up.join("share").join("occopus").join("plugins"));
    }
    v
}

/// The directories searched, in order, with their origin.
pub(crate) fn search_path(cfg: &RuntimeConfig) -> Vec<(PathBuf, Origin)> {
    let mut out = Vec::new();
    if cfg.builtin_dirs
        && let Ok(exe) = std::env::current_exe()
    {
        out.extend(
            builtin_dirs_for(&exe)
                .into_iter()
                .map(|d| (d, Origin::Builtin)),
        );
    }
    if cfg.env_plugin_path
        && let Some(p) = std::env::var_os(PLUGIN_PATH_ENV)
    {
        out.extend(
            std::env::split_paths(&p)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|d| (d, Origin::Env)),
        );
    }
    out.extend(cfg.plugin_dirs.iter().map(|d| (d.clone(), Origin::Flag)));
    out
}

/// Every `*.wasm` file of the search path, in order, without duplicates.
pub(crate) fn discover(cfg: &RuntimeConfig, errors: &mut Vec<LoadError>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (dir, origin) in search_path(cfg) {
        let mut found: Vec<PathBuf> = if dir.is_file() {
            vec![dir.clone()]
        } else {
            match std::fs::read_dir(&dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
                    .collect(),
                Err(e) => {
                    if origin != Origin::Builtin {
                        let from = if origin == Origin::Env {
                            format!(" (from {PLUGIN_PATH_ENV})")
                        } else {
                            String::new()
                        };
                        errors.push(LoadError {
                            path: dir.clone(),
                            message: format!("cannot read plugin directory{from}: {e}"),
                        });
                    }
                    continue;
                }
            }
        };
        found.sort();
        for f in found {
            let key = f.canonicalize().unwrap_or_else(|_| f.clone());
            if seen.insert(key) {
                files.push(f);
            }
        }
    }
    files
}

/// A loaded plugin: what `plugins list` shows, its schemas and its instance pool.
pub(crate) struct LoadedPlugin {
    pub info: PluginInfo,
    pub path: PathBuf,
    pub cache: CacheOutcome,
    pub schemas: BTreeMap<String, SectionSchema>,
    pub pool: InstancePool,
}

/// Context shared by every load.
pub(crate) struct Loader<'a> {
    pub engine: &'a Engine,
    pub linker: &'a Linker<PluginState>,
    pub cache: &'a ArtifactCache,
    pub config: &'a RuntimeConfig,
    pub runtime: Arc<RuntimeShared>,
}

/// Build the linker every plugin links against: WASI p2 (with our sandboxed context) and
/// the host API.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut l = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut l)?;
    host_api::HostApi::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut l, |s| s)?;
    Ok(l)
}

/// `0.1.3` is compatible with our `0.1.0`; `1.2` with `1.0` (semver, 0.x by minor).
fn compatible(version: &str) -> bool {
    let ours: Vec<&str> = ABI_VERSION.split('.').collect();
    let theirs: Vec<&str> = version.split(['.', '-', '+']).collect();
    match (ours.first(), theirs.first()) {
        (Some(&"0"), Some(&"0")) => ours.get(1) == theirs.get(1),
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn abi_series() -> String {
    let parts: Vec<&str> = ABI_VERSION.split('.').collect();
    if parts.first() == Some(&"0") {
        format!("{}.{}", parts[0], parts.get(1).unwrap_or(&"0"))
    } else {
        parts[0].to_string()
    }
}

/// Split `occopus:plugin/http@0.1.0` into (`occopus:plugin`, `http`, `0.1.0`).
fn split_name(name: &str) -> (&str, &str, &str) {
    let (base, version) = name.split_once('@').unwrap_or((name, ""));
    let (pkg, iface) = base.split_once('/').unwrap_or((base, ""));
    (pkg, iface, version)
}

fn kind_of(iface: &str) -> Option<PluginKind> {
    match iface {
        "resource-handler" => Some(PluginKind::ResourceHandler),
        "health-checker" => Some(PluginKind::HealthChecker),
        "config-manager" => Some(PluginKind::ConfigManager),
        _ => None,
    }
}

/// The sidecar manifest `<stem>.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    /// Hex sha256 of the component, optionally prefixed `sha256:`.
    sha256: String,
}

fn check_sidecar(path: &Path, digest: &str) -> Result<(), String> {
    let manifest = path.with_extension("toml");
    let text = match std::fs::read_to_string(&manifest) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read manifest {}: {e}", manifest.display())),
    };
    let s: Sidecar = toml::from_str(&text)
        .map_err(|e| format!("manifest {}: {}", manifest.display(), e.message()))?;
    let pinned = s
        .sha256
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    if pinned != digest {
        return Err(format!(
            "digest mismatch: the component has sha256:{digest} but {} pins sha256:{pinned}; refusing to load it (rebuild the manifest if the plugin was updated on purpose)",
            manifest.display()
        ));
    }
    Ok(())
}

/// `[a-z0-9-]{1,63}`.
fn valid_plugin_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_type_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn valid_version(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The kind-independent part of `metadata()`.
type Metadata = host_api::occopus::plugin::types::PluginMetadata;

impl Loader<'_> {
    /// Load one component file.
    pub async fn load(&self, path: &Path) -> Result<LoadedPlugin, String> {
        let len = std::fs::metadata(path)
            .map_err(|e| format!("cannot read: {e}"))?
            .len();
        if len > MAX_COMPONENT_BYTES {
            return Err(format!(
                "{len} bytes is larger than any plugin we accept ({MAX_COMPONENT_BYTES})"
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let digest = sha256_hex(&bytes);
        check_sidecar(path, &digest)?;
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let d = digest.clone();
        let (component, cache_outcome) =
            tokio::task::spawn_blocking(move || cache.load_or_compile(&engine, &bytes, &d))
                .await
                .map_err(|e| format!("compilation task failed: {e}"))?
                .map_err(|e| format!("not a usable WebAssembly component: {e:#}"))?;
        tracing::debug!(plugin = %path.display(), cache = ?cache_outcome, "component ready");

        let (kind, abi) = self.check_exports(&component)?;
        let imports_process = self.check_imports(&component)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            format!("does not link against this host (occopus:plugin@{ABI_VERSION}): {e:#}")
        })?;
        let kind_pre = match kind {
            PluginKind::ResourceHandler => {
                rh::ResourceHandlerPluginPre::new(pre).map(KindPre::ResourceHandler)
            }
            PluginKind::HealthChecker => {
                hc::HealthCheckerPluginPre::new(pre).map(KindPre::HealthChecker)
            }
            PluginKind::ConfigManager => {
                cm::ConfigManagerPluginPre::new(pre).map(KindPre::ConfigManager)
            }
        }
        .map_err(|e| {
            format!("its {kind} exports do not match occopus:plugin@{ABI_VERSION}: {e:#}")
        })?;

        // metadata(), on a throw-away instance with nothing granted.
        let file_label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let probe_shared = Arc::new(PluginShared::new(
            file_label.clone(),
            Arc::new(Grants::new(
                file_label,
                CapabilitySet::default(),
                CapabilitySet::default(),
            )),
            PluginLimits::new(&self.config.limits, None),
            self.runtime.clone(),
        ));
        let probe_pool =
            InstancePool::new(self.engine.clone(), kind_pre.clone(), probe_shared.clone());
        let max = self.config.limits.max_output_bytes;
        let meta: Metadata = probe_pool
            .call(
                "metadata",
                CallPolicy::new(probe_shared.grants.clone()),
                None,
                move |s, b| {
                    Box::pin(async move {
                        let m = match b {
                            Bindings::ResourceHandler(_) => {
                                b.resource_handler()?.call_metadata(s).await?
                            }
                            Bindings::HealthChecker(_) => {
                                b.health_checker()?.call_metadata(s).await?
                            }
                            Bindings::ConfigManager(_) => {
                                b.config_manager()?.call_metadata(s).await?
                            }
                        };
                        let size = m.name.len()
                            + m.version.len()
                            + m.description.len()
                            + m.types
                                .iter()
                                .map(|t| t.name.len() + t.schema.len())
                                .sum::<usize>()
                            + m.capabilities.iter().map(String::len).sum::<usize>();
                        bound(size, max, "metadata")?;
                        Ok(m)
                    })
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        drop(probe_pool);

        let (schemas, requested) = validate_metadata(&meta)?;
        let grant = self.config.plugins.get(&meta.name);
        let grants = if self.config.grant_all_requested {
            Arc::new(Grants::all_requested(meta.name.clone(), requested))
        } else {
            let granted = CapabilitySet::from_grant(grant, meta.name == "local")
                .map_err(|e| format!("operator config plugins.{}: {}", meta.name, e.join("; ")))?;
            Arc::new(Grants::new(meta.name.clone(), requested, granted))
        };
        if imports_process && !grants.process() {
            let why = if grants.requested().entries().iter().any(|c| c == "process") {
                format!(
                    "grant it with plugins.{}.process: true in the operator config",
                    meta.name
                )
            } else {
                "the plugin does not request `process` in its capabilities either".to_string()
            };
            return Err(format!(
                "plugin `{}` imports {PACKAGE}/process but the `process` capability is not granted to it; {why}",
                meta.name
            ));
        }
        let shared = Arc::new(PluginShared::new(
            meta.name.clone(),
            grants.clone(),
            PluginLimits::new(&self.config.limits, grant),
            self.runtime.clone(),
        ));
        let info = PluginInfo {
            name: meta.name.clone(),
            version: meta.version.clone(),
            abi: format!("{PACKAGE}@{abi}"),
            kind,
            types: schemas
                .iter()
                .map(|(name, s)| TypeInfo {
                    name: name.clone(),
                    schema: s.schema().clone(),
                })
                .collect(),
            requested: meta.capabilities.clone(),
            granted: grants.effective(),
            digest: format!("sha256:{digest}"),
            source: path.display().to_string(),
            description: meta.description.clone(),
        };
        Ok(LoadedPlugin {
            info,
            path: path.to_path_buf(),
            cache: cache_outcome,
            schemas,
            pool: InstancePool::new(self.engine.clone(), kind_pre, shared),
        })
    }

    /// The plugin kind and the ABI version of its export.
    fn check_exports(&self, c: &Component) -> Result<(PluginKind, String), String> {
        let ty = c.component_type();
        let mut ours = Vec::new();
        let mut all = Vec::new();
        for (name, _) in ty.exports(self.engine) {
            all.push(name.to_string());
            let (pkg, iface, version) = split_name(name);
            if pkg == PACKAGE
                && let Some(k) = kind_of(iface)
            {
                ours.push((k, name.to_string(), version.to_string()));
            }
        }
        match ours.as_slice() {
            [] => Err(format!(
                "not an Occopus plugin: it exports none of {PACKAGE}/resource-handler, health-checker or config-manager (it exports: {})",
                if all.is_empty() {
                    "nothing".to_string()
                } else {
                    all.join(", ")
                }
            )),
            [(kind, name, version)] => {
                if compatible(version) {
                    Ok((*kind, version.clone()))
                } else {
                    Err(format!(
                        "ABI mismatch: the component exports `{name}`, but this host speaks {PACKAGE}@{ABI_VERSION} (compatible: {PACKAGE}@{}.x); rebuild the plugin against that version or use an Occopus that speaks {version}",
                        abi_series()
                    ))
                }
            }
            many => Err(format!(
                "exports several plugin kinds ({}); a component must be exactly one kind",
                many.iter()
                    .map(|(_, n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Refuse imports outside our package and the inert WASI set. Returns whether the
    /// component imports `process`.
    fn check_imports(&self, c: &Component) -> Result<bool, String> {
        let mut process = false;
        let mut problems = Vec::new();
        for (name, _) in c.component_type().imports(self.engine) {
            let (pkg, iface, version) = split_name(name);
            if pkg == PACKAGE {
                if !compatible(version) {
                    problems.push(format!(
                        "ABI mismatch: it imports `{name}`, but this host provides {PACKAGE}@{ABI_VERSION}"
                    ));
                } else if !HOST_INTERFACES.contains(&iface) {
                    problems.push(format!(
                        "it imports `{name}`, which this host does not provide"
                    ));
                } else if iface == "process" {
                    process = true;
                }
            } else if let Some(wasi) = pkg.strip_prefix("wasi:") {
                if !INERT_WASI.contains(&wasi) {
                    problems.push(format!(
                        "it imports `{name}`, which plugins may not use (HTTP goes through {PACKAGE}/http)"
                    ));
                }
            } else {
                problems.push(format!(
                    "it imports `{name}`, which is neither {PACKAGE} nor WASI"
                ));
            }
        }
        if problems.is_empty() {
            Ok(process)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Check `metadata()`: name, version, types with valid schemas, capabilities.
fn validate_metadata(
    m: &Metadata,
) -> Result<(BTreeMap<String, SectionSchema>, CapabilitySet), String> {
    let mut problems = Vec::new();
    if !valid_plugin_name(&m.name) {
        problems.push(format!("name `{}` is not 1 to 63 of [a-z0-9-]", m.name));
    }
    if !valid_version(&m.version) {
        problems.push(format!("version `{}` is not semver (x.y.z)", m.version));
    }
    if m.types.is_empty() {
        problems.push("it declares no types".to_string());
    }
    let mut schemas = BTreeMap::new();
    for t in &m.types {
        if !valid_type_name(&t.name) {
            problems.push(format!(
                "type name `{}` is not 1 to 63 of [A-Za-z0-9._-]",
                t.name
            ));
            continue;
        }
        if schemas.contains_key(&t.name) {
            problems.push(format!("type `{}` is declared twice", t.name));
            continue;
        }
        match SectionSchema::compile(&t.schema) {
            Ok(s) => {
                schemas.insert(t.name.clone(), s);
            }
            Err(e) => problems.push(format!("type `{}`: {e}", t.name)),
        }
    }
    let caps = match CapabilitySet::parse_requested(&m.capabilities) {
        Ok(c) => c,
        Err(e) => {
            problems.extend(e);
            CapabilitySet::default()
        }
    };
    if problems.is_empty() {
        Ok((schemas, caps))
    } else {
        Err(format!("bad metadata: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_names() {
        assert!(compatible("0.1.0"));
        assert!(compatible("0.1.7"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("1.1.0"));
        assert!(!compatible(""));
        assert_eq!(
            split_name("occopus:plugin/http@0.1.0"),
            ("occopus:plugin", "http", "0.1.0")
        );
        assert!(valid_plugin_name("aws-ec2"));
        assert!(!valid_plugin_name("Bad Name!"));
        assert!(valid_version("1.2.3-rc.1"));
        assert!(!valid_version("1.2"));
    }

    #[test]
    fn builtin_dirs_cover_dev_and_installed_layouts() {
        let d = builtin_dirs_for(Path::new("/opt/occopus/bin/occopus"));
        assert_eq!(
            d,
            vec![
                PathBuf::from("/opt/occopus/bin/plugins"),
                PathBuf::from("/opt/occopus/plugins"),
                PathBuf::from("/opt/occopus/share/occopus/plugins"),
            ]
        );
    }

    #[test]
    fn sidecar_digest_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("p.wasm");
        std::fs::write(&wasm, b"x").unwrap();
        assert!(check_sidecar(&wasm, "abc").is_ok());
        std::fs::write(dir.path().join("p.toml"), "sha256 = \"sha256:ABC\"\n").unwrap();
        assert!(check_sidecar(&wasm, "abc").is_ok());
        let e = check_sidecar(&wasm, "def").unwrap_err();
        assert!(
            e.contains("digest mismatch") && e.contains("pins sha256:abc"),
            "{e}"
        );
        std::fs::write(dir.path().join("p.toml"), "sha = 1\n").unwrap();
        assert!(
            check_sidecar(&wasm, "abc")
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
