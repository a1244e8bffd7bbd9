//! Snapshot tests of what users see.
//!
//! `tests/ui/invalid/<case>/` holds input files and `expected.txt`, the rendered
//! diagnostics. `tests/ui/valid/<case>/` holds input files and `expected.json`, the
//! resolved infrastructure (plus `warnings.txt` when the load warns). A case is:
//!
//! - `infra.yaml` (with `nodes/node_definitions.yaml` beside it, and `auth_data.yaml` if
//!   present): a full load;
//! - only `node_definitions.yaml`: `parse_node_definitions`;
//! - only `auth_data.yaml`: `parse_auth_data`.
//!
//! A file `lenient` switches on lenient templates; `plugins.json` makes a fake plugin host
//! (`{"resource-handler": {"sim": [{"path": "/x", "message": "..."}]}}`: the types it
//! handles and the field errors its schema check returns).
//!
//! Run with `BLESS=1` to write the snapshots.

use occopus_description::{
    Diagnostics, LoadOptions, load, parse_auth_data, parse_node_definitions,
};
use occopus_model::plugin::{
    ConfigManager, FieldError, HealthChecker, NoPlugin, PluginHost, PluginInfo, PluginKind,
    ResourceHandler,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A plugin host that only answers schema checks, from `plugins.json`.
struct FakeHost {
    types: BTreeMap<String, BTreeMap<String, Vec<FieldError>>>,
}

impl FakeHost {
    fn load(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let raw: BTreeMap<String, BTreeMap<String, Vec<Value>>> =
            serde_json::from_str(&text).expect("plugins.json");
        let types = raw
            .into_iter()
            .map(|(kind, types)| {
                let types = types
                    .into_iter()
                    .map(|(t, errs)| {
                        let errs = errs
                            .into_iter()
                            .map(|e| FieldError {
                                path: e["path"].as_str().unwrap_or_default().into(),
                                message: e["message"].as_str().unwrap_or_default().into(),
                            })
                            .collect();
                        (t, errs)
                    })
                    .collect();
                (kind, types)
            })
            .collect();
        Some(Self { types })
    }

    fn none(&self, kind: PluginKind, type_name: &str) -> NoPlugin {
        NoPlugin {
            kind,
            type_name: type_name.into(),
            known: self
                .types
                .get(kind.as_str())
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

impl PluginHost for FakeHost {
    fn resource_handler(&self, t: &str) -> Result<Arc<dyn ResourceHandler>, NoPlugin> {
        Err(self.none(PluginKind::ResourceHandler, t))
    }
    fn health_checker(&self, t: &str) -> Result<Arc<dyn HealthChecker>, NoPlugin> {
        Err(self.none(PluginKind::HealthChecker, t))
    }
    fn config_manager(&self, t: &str) -> Result<Arc<dyn ConfigManager>, NoPlugin> {
        Err(self.none(PluginKind::ConfigManager, t))
    }
    fn check_section(
        &self,
        kind: PluginKind,
        type_name: &str,
        _section: &Value,
        unrendered: bool,
    ) -> Result<Vec<FieldError>, NoPlugin> {
        assert!(unrendered, "validation checks unrendered sections");
        self.types
            .get(kind.as_str())
            .and_then(|t| t.get(type_name))
            .cloned()
            .ok_or_else(|| self.none(kind, type_name))
    }
    fn plugins(&self) -> Vec<PluginInfo> {
        Vec::new()
    }
}

enum Outcome {
    Failed(Diagnostics),
    Loaded { json: String, warnings: Diagnostics },
}

fn run(dir: &Path) -> Outcome {
    let host = FakeHost::load(&dir.join("plugins.json"));
    let host = host.as_ref().map(|h| h as &dyn PluginHost);
    let lenient = dir.join("lenient").exists();
    let infra = dir.join("infra.yaml");
    let auth = dir.join("auth_data.yaml");
    if infra.exists() {
        let mut opts = LoadOptions::new(&infra).lenient(lenient);
        if auth.exists() {
            opts = opts.with_auth(auth.as_path());
        }
        return match load(&opts, host) {
            Ok(l) => Outcome::Loaded {
                json: serde_json::to_string_pretty(&*l.infra).unwrap() + "\n",
                warnings: l.warnings,
            },
            Err(d) => Outcome::Failed(d),
        };
    }
    let defs = dir.join("node_definitions.yaml");
    if defs.exists() {
        return match parse_node_definitions(&defs, host) {
            Ok(p) => Outcome::Loaded {
                json: serde_json::to_string_pretty(&p.defs).unwrap() + "\n",
                warnings: p.warnings,
            },
            Err(d) => Outcome::Failed(d),
        };
    }
    match parse_auth_data(&auth) {
        Ok(a) => Outcome::Loaded {
            json: format!("{a:?}\n"),
            warnings: Diagnostics::new(),
        },
        Err(d) => Outcome::Failed(d),
    }
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let root = Path::new("tests/ui").join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Make paths relative to the case folder so snapshots do not depend on where they run.
fn relative(text: &str, dir: &Path) -> String {
    text.replace(&format!("{}/", dir.display()), "")
}

fn compare(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{} differs (run with BLESS=1 to update)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn invalid_cases_render_their_diagnostics() {
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeSet::new();
    let dirs = cases("invalid");
    for dir in &dirs {
        let diags = match run(dir) {
            Outcome::Failed(d) => d,
            Outcome::Loaded { warnings, .. } => warnings,
        };
        if diags.is_empty() {
            failures.push(format!("{}: no diagnostics", dir.display()));
            continue;
        }
        codes.extend(diags.iter().map(|d| d.code));
        // JSON output is always an array of objects with the same fields.
        let json = diags.to_json();
        assert_eq!(json.as_array().map(Vec::len), Some(diags.len()));
        compare(
            &dir.join("expected.txt"),
            &relative(&diags.to_string(), dir),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        codes.len() >= 20,
        "only {} distinct codes: {codes:?}",
        codes.len()
    );
}

#[test]
fn valid_cases_resolve() {
    let mut failures = Vec::new();
    for dir in cases("valid") {
        match run(&dir) {
            Outcome::Failed(d) => failures.push(format!("{}:\n{d}", dir.display())),
            Outcome::Loaded { json, warnings } => {
                compare(
                    &dir.join("expected.json"),
                    &relative(&json, &dir),
                    &mut failures,
                );
                let w = dir.join("warnings.txt");
                if !warnings.is_empty() || w.exists() {
                    compare(&w, &relative(&warnings.to_string(), &dir), &mut failures);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
