//! Facts about the workspace from `cargo metadata`: its root, its target directory
//! (honouring `CARGO_TARGET_DIR` and cargo config) and its member packages.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The cargo binary that runs us (`cargo xtask` sets `CARGO`).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// One workspace member.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub manifest_dir: PathBuf,
    /// Name of the `cdylib` target (the artifact is `<lib_name>.wasm`), if any.
    pub cdylib: Option<String>,
}

/// The workspace as cargo sees it.
#[derive(Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub packages: Vec<Package>,
}

impl Workspace {
    pub fn load() -> Result<Self> {
        let out = Command::new(cargo())
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .output()
            .context("running `cargo metadata`")?;
        if !out.status.success() {
            bail!(
                "`cargo metadata` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: Value =
            serde_json::from_slice(&out.stdout).context("parsing `cargo metadata` output")?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let root = PathBuf::from(s(&v, "workspace_root").context("no workspace_root")?);
        let target_dir = PathBuf::from(s(&v, "target_directory").context("no target_directory")?);
        let packages = v
            .get("packages")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        let manifest = PathBuf::from(s(p, "manifest_path")?);
                        let cdylib = p.get("targets").and_then(Value::as_array).and_then(|ts| {
                            ts.iter()
                                .find(|t| {
                                    t.get("crate_types")
                                        .and_then(Value::as_array)
                                        .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
                                })
                                .and_then(|t| s(t, "name"))
                        });
                        Some(Package {
                            name: s(p, "name")?,
                            manifest_dir: manifest.parent()?.to_path_buf(),
                            cdylib,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            root,
            target_dir,
            packages,
        })
    }
}
