//! `cargo xtask demo [--destroy]`: the README's first command. Installs the wasm target if
//! needed, builds the plugins and the `occopus` binary (release profile: what a user runs,
//! and what `cargo xtask bench` measures), deploys the embedded default example
//! (`examples/default/infra-default.yaml`, three tiers on the `local` backend) with a live
//! progress view, shows `occopus status`, and sends one HTTP request through the front node.
//! The example keeps running; `--destroy` removes it. Running the demo again updates the
//! same infrastructure instead of making a second one.

use crate::build_plugins;
use crate::workspace::{Workspace, cargo};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const EXAMPLE: &str = "examples/default/infra-default.yaml";

struct Occ {
    bin: PathBuf,
    state: PathBuf,
    plugins: PathBuf,
    root: PathBuf,
}

impl Occ {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--plugin-dir")
            .arg(&self.plugins);
        c
    }
    fn json(&self, args: &[&str]) -> Result<Value> {
        let out = self
            .cmd()
            .args(args)
            .args(["--output", "json"])
            .stderr(Stdio::inherit())
            .output()?;
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("`occopus {}` printed no JSON", args.join(" ")))
    }
    fn infras(&self) -> Result<Vec<String>> {
        Ok(self
            .json(&["status"])?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["infra_id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let mut destroy = false;
    for a in args {
        match a.as_str() {
            "--destroy" => destroy = true,
            other => bail!("unknown option `{other}` (expected --destroy)"),
        }
    }
    let ws = Workspace::load()?;
    if !destroy {
        eprintln!("==> building the plugins (WebAssembly components)");
        build_plugins::run(&[])?;
    }
    eprintln!("==> building occopus (release; the first time takes several minutes)");
    let ok = Command::new(cargo())
        .current_dir(&ws.root)
        .args(["build", "--quiet", "--release", "-p", "occopus-cli"])
        .status()
        .context("running cargo build")?;
    if !ok.success() {
        bail!("building occopus failed");
    }
    let occ = Occ {
        bin: ws.target_dir.join("release/occopus"),
        state: ws.target_dir.join("demo/state"),
        plugins: ws.target_dir.join("plugins"),
        root: ws.root.clone(),
    };
    let existing = occ.infras()?;
    if destroy {
        if existing.is_empty() {
            eprintln!("nothing to destroy: no demo infrastructure is running");
        }
        for id in existing {
            let s = occ.cmd().args(["destroy", &id]).status()?;
            if !s.success() {
                bail!("destroying {id} failed");
            }
        }
        return Ok(());
    }

    eprintln!("==> occopus build {EXAMPLE}");
    let mut build = occ.cmd();
    build.args(["build", EXAMPLE]);
    if let Some(id) = existing.first() {
        eprintln!("(updating the demo infrastructure {id} that is already there)");
        build.args(["-i", id]);
    }
    let out = build
        .stderr(Stdio::inherit())
        .output()
        .context("running occopus build")?;
    if !out.status.success() {
        bail!("the build failed (see above)");
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();

    eprintln!("\n==> occopus status {id}");
    let _ = occ.cmd().args(["status", &id]).status();

    let status = occ.json(&["status", &id])?;
    let front = status["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["node"] == "front"))
        .and_then(|i| i["addresses"]["primary"].as_str())
        .context("the front node has no address")?
        .to_string();
    let port = variable(&ws.root.join(EXAMPLE), "front_port").unwrap_or(8080);
    eprintln!("\n==> GET http://{front}:{port}/  (front -> api -> store)");
    let body = http_get(&front, port, "/")?;
    println!("{body}");
    eprintln!(
        "\nThe example is running. Try:\n  curl http://{front}:{port}/\n  {bin} --state-dir {state} status {id}\n  {bin} --state-dir {state} logs {id} api\nRemove it with:\n  cargo xtask demo --destroy",
        bin = occ.bin.display(),
        state = occ.state.display()
    );
    Ok(())
}

/// The value of a top-level `variables:` entry such as `front_port: 8080`.
fn variable(file: &Path, key: &str) -> Option<u16> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix(key)?
                .trim()
                .strip_prefix(':')
                .map(str::trim)
        })
        .find_map(|v| v.parse().ok())
}

/// One HTTP/1.0 GET with the standard library (the demo needs no HTTP client).
fn http_get(host: &str, port: u16, path: &str) -> Result<String> {
    let addr = format!("{host}:{port}");
    let mut s = TcpStream::connect(&addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        bail!("the front answered `{status}`:\n{body}");
    }
    Ok(body.to_string())
}
