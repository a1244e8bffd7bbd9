//! Test support shared by the runtime tests, the SDK harness tests and the benchmark
//! (included with `#[path]`): builds the fixture plugins under `plugins/fixtures/` and the
//! built-in plugins [`BUILTIN`] for `wasm32-wasip2` once per test process (the same
//! `cargo build --profile plugin` that `cargo xtask build-plugins --fixtures` runs),
//! serialised across processes by a file lock, and hands out their paths.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub use occopus_tests::{target_dir, workspace_root};

/// The built-in plugins the runtime tests and the benchmark load (directory names under
/// `plugins/`, packages `occopus-plugin-<name>`).
pub const BUILTIN: &[&str] = &["sim", "basic", "dummy"];

/// Every fixture crate directory name under `plugins/fixtures/`.
pub fn fixture_names() -> Vec<String> {
    let dir = workspace_root().join("plugins/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn build() -> Result<PathBuf, String> {
    let target = target_dir();
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let lock_path = target.join(".occopus-fixtures.lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target);
    for n in fixture_names() {
        cmd.args(["-p", &format!("occopus-fixture-{n}")]);
    }
    for n in BUILTIN {
        cmd.args(["-p", &format!("occopus-plugin-{n}")]);
    }
    let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    let _ = lock.unlock();
    if !out.status.success() {
        return Err(format!(
            "building the fixture plugins failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(target.join("wasm32-wasip2").join("plugin"))
}

/// Directory holding the built fixture components (built on first use).
pub fn built_dir() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(build) {
        Ok(d) => d.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The component of fixture `name` (a directory name under `plugins/fixtures/`).
pub fn fixture(name: &str) -> PathBuf {
    let p = built_dir().join(format!("occopus_fixture_{}.wasm", name.replace('-', "_")));
    assert!(p.is_file(), "fixture {name} not built at {}", p.display());
    p
}

/// The component of built-in plugin `name` (one of [`BUILTIN`]).
pub fn builtin(name: &str) -> PathBuf {
    let p = built_dir().join(format!("occopus_plugin_{}.wasm", name.replace('-', "_")));
    assert!(p.is_file(), "plugin {name} not built at {}", p.display());
    p
}

/// A fresh directory holding copies of the named built-in plugins as `<name>.wasm`.
pub fn builtin_dir(names: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for n in names {
        std::fs::copy(builtin(n), d.path().join(format!("{n}.wasm"))).expect("copy plugin");
    }
    d
}

/// A fresh directory holding copies of the named fixtures as `<name>.wasm`.
pub fn plugin_dir(names: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for n in names {
        std::fs::copy(fixture(n), d.path().join(format!("{n}.wasm"))).expect("copy fixture");
    }
    d
}
