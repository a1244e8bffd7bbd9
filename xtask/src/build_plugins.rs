//! `cargo xtask build-plugins [--fixtures] [--only <name>]...`: build every plugin crate
//! under `plugins/` (fixtures under `plugins/fixtures/` only with `--fixtures`) with
//! `cargo build --profile plugin --target wasm32-wasip2`, then copy each component to
//! `<target dir>/plugins/<dir name>.wasm` (fixtures: `<target dir>/plugins-fixtures/`).
//! Installs the `wasm32-wasip2` target with rustup first if it is missing.

use crate::workspace::{Package, Workspace, cargo};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

struct Options {
    fixtures: bool,
    only: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        fixtures: false,
        only: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--fixtures" => o.fixtures = true,
            "--only" => o.only.push(
                it.next()
                    .context("--only needs a plugin directory name")?
                    .clone(),
            ),
            other => bail!("unknown option `{other}` (expected --fixtures or --only <name>)"),
        }
    }
    Ok(o)
}

/// `rustup target add wasm32-wasip2` unless it is installed; silent when present.
fn ensure_target() -> Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match listed {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
            {
                return Ok(());
            }
            eprintln!("installing the {TARGET} target with rustup");
            let s = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()
                .context("running rustup")?;
            if !s.success() {
                bail!("`rustup target add {TARGET}` failed");
            }
            Ok(())
        }
        // No rustup: the toolchain may still have the target; cargo will say if not.
        _ => Ok(()),
    }
}

/// A plugin crate and where its component goes.
struct Plugin<'a> {
    package: &'a Package,
    artifact: String,
    out_name: String,
    fixture: bool,
}

fn select<'a>(ws: &'a Workspace, o: &Options) -> Result<Vec<Plugin<'a>>> {
    let plugins_dir = ws.root.join("plugins");
    let fixtures_dir = plugins_dir.join("fixtures");
    let mut out = Vec::new();
    for p in &ws.packages {
        if !p.manifest_dir.starts_with(&plugins_dir) {
            continue;
        }
        let fixture = p.manifest_dir.starts_with(&fixtures_dir);
        if fixture && !o.fixtures {
            continue;
        }
        let dir_name = p
            .manifest_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("plugin crate without a directory name")?;
        if !o.only.is_empty() && !o.only.contains(&dir_name) {
            continue;
        }
        // Native test crates of a plugin (`plugins/<name>/e2e`) are not plugins.
        if p.cdylib.is_none() && p.manifest_dir.file_name().is_some_and(|n| n == "e2e") {
            continue;
        }
        let Some(lib) = &p.cdylib else {
            bail!(
                "{} ({}) has no cdylib target; plugin crates need `crate-type = [\"cdylib\"]`",
                p.name,
                p.manifest_dir.display()
            );
        };
        out.push(Plugin {
            package: p,
            artifact: format!("{}.wasm", lib.replace('-', "_")),
            out_name: format!("{dir_name}.wasm"),
            fixture,
        });
    }
    if out.is_empty() {
        bail!("no plugin crates matched under {}", plugins_dir.display());
    }
    Ok(out)
}

/// Copy atomically (a running host may be reading the old file).
fn publish(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().context("output has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        to.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::copy(from, &tmp).with_context(|| format!("copying {}", from.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("writing {}", to.display()))?;
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    ensure_target()?;
    let ws = Workspace::load()?;
    let plugins = select(&ws, &o)?;
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&ws.root)
        .args(["build", "--profile", PROFILE, "--target", TARGET]);
    for p in &plugins {
        cmd.args(["-p", &p.package.name]);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the plugins failed");
    }
    let built = ws.target_dir.join(TARGET).join(PROFILE);
    let mut written: Vec<PathBuf> = Vec::new();
    for p in &plugins {
        let out_dir = ws.target_dir.join(if p.fixture {
            "plugins-fixtures"
        } else {
            "plugins"
        });
        let to = out_dir.join(&p.out_name);
        publish(&built.join(&p.artifact), &to)?;
        written.push(to);
    }
    for w in &written {
        println!("{}", w.display());
    }
    Ok(())
}
