//! The `local` component for the tests: built on first use with the same
//! `cargo build --profile plugin --target wasm32-wasip2` that
//! `cargo xtask build-plugins --only local` runs, into this test binary's target directory,
//! serialised across test processes by a file lock.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// `<target>` of this test binary (`<target>/<profile>/deps/<bin>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary under <target>/<profile>/deps")
        .to_path_buf()
}

fn build() -> Result<PathBuf, String> {
    let target = target_dir();
    let lock_path = target.join(".occopus-local-e2e.lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
        ])
        .args(["-p", "occopus-plugin-local", "--target-dir"])
        .arg(&target)
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    let _ = lock.unlock();
    if !out.status.success() {
        return Err(format!(
            "building the local plugin failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let wasm = target.join("wasm32-wasip2/plugin/occopus_plugin_local.wasm");
    if !wasm.is_file() {
        return Err(format!("{} was not built", wasm.display()));
    }
    Ok(wasm)
}

/// The built component (built on first use in this test process).
pub fn path() -> PathBuf {
    static WASM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match WASM.get_or_init(build) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}
