//! `cargo xtask test [-- <cargo test args>]`: the whole test suite, as CI runs it.
//!
//! Builds every plugin (fixtures included), starts the test environment
//! (`scripts/testenv.sh up`: Docker Engine, EC2 emulator, MariaDB, Graphviz; installing
//! what is missing on Debian as root), runs `cargo test` over the default workspace
//! members, then the plugins' and the guest SDK's unit tests (`cargo test --lib`, natively),
//! and stops what the environment script started. Fails if any step fails.

use crate::build_plugins;
use crate::workspace::{Workspace, cargo};
use anyhow::{Context, Result, bail};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let extra: Vec<String> = match args.split_first() {
        Some((first, rest)) if first == "--" => rest.to_vec(),
        Some((other, _)) => {
            bail!("unknown option `{other}` (pass cargo test arguments after `--`)")
        }
        None => Vec::new(),
    };
    let ws = Workspace::load()?;
    eprintln!("==> building plugins");
    build_plugins::run(&["--fixtures".to_string()])?;

    eprintln!("==> starting the test environment (scripts/testenv.sh up)");
    let testenv = ws.root.join("scripts/testenv.sh");
    let up = Command::new(&testenv)
        .arg("up")
        .env("CARGO_TARGET_DIR", &ws.target_dir)
        .status()
        .context("running scripts/testenv.sh")?;
    if !up.success() {
        let _ = Command::new(&testenv)
            .arg("down")
            .env("CARGO_TARGET_DIR", &ws.target_dir)
            .status();
        bail!("the test environment did not start (see the messages above)");
    }

    eprintln!("==> cargo test");
    let tests = Command::new(cargo())
        .current_dir(&ws.root)
        .env("CARGO_TARGET_DIR", &ws.target_dir)
        .args(["test", "--no-fail-fast"])
        .args(&extra)
        .status()
        .context("running cargo test");

    // The guest crates' own unit tests (SigV4 vectors, section parsing, check logic...)
    // run natively as library tests: the plugins are not default members, and their
    // cdylib form only links for wasm32-wasip2.
    let guests = guest_crates(&ws);
    let guest_tests = if extra.is_empty() && !guests.is_empty() {
        eprintln!("==> cargo test --lib of the plugins and the SDK");
        let mut c = Command::new(cargo());
        c.current_dir(&ws.root)
            .env("CARGO_TARGET_DIR", &ws.target_dir)
            .args(["test", "--no-fail-fast", "--lib"]);
        for g in &guests {
            c.args(["-p", g]);
        }
        Some(c.status().context("running cargo test --lib"))
    } else {
        None
    };

    eprintln!("==> stopping the test environment");
    let down = Command::new(&testenv)
        .arg("down")
        .env("CARGO_TARGET_DIR", &ws.target_dir)
        .status();
    if !tests?.success() {
        bail!("some tests failed");
    }
    if let Some(g) = guest_tests
        && !g?.success()
    {
        bail!("some plugin or SDK unit tests failed");
    }
    if !down.map(|s| s.success()).unwrap_or(false) {
        bail!("scripts/testenv.sh down failed");
    }
    Ok(())
}

/// The plugin crates under `plugins/` (not the misbehaving fixtures, not the native `e2e`
/// test crates) and the guest SDK.
fn guest_crates(ws: &Workspace) -> Vec<String> {
    let plugins = ws.root.join("plugins");
    let fixtures = plugins.join("fixtures");
    let sdk = ws.root.join("sdk");
    ws.packages
        .iter()
        .filter(|p| {
            let d = &p.manifest_dir;
            *d == sdk
                || (d.starts_with(&plugins) && !d.starts_with(&fixtures) && p.cdylib.is_some())
        })
        .map(|p| p.name.clone())
        .collect()
}
