//! Plugin costs: runs the runtime's own benchmark (`cargo bench -p occopus-runtime --bench
//! plugin`, which writes its figures as JSON to `OCCOPUS_BENCH_JSON`) and reads them back.
//!
//! Must not: measure anything itself; the runtime benchmark owns how plugin costs are
//! taken.

use crate::workspace::{Workspace, cargo};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// Figures of one built-in plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginFigures {
    pub plugin: String,
    pub kind: String,
    pub component_kib: f64,
    pub first_compile_ms: f64,
    pub cache_load_us: f64,
    pub instantiate_us: f64,
    pub call_us: f64,
    /// The export `call_us` measures.
    pub call: String,
}

/// The runtime benchmark's targets, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PluginTargets {
    pub cache_load_us: f64,
    pub instantiate_us: f64,
    pub call_us: f64,
}

/// Run the runtime benchmark (its output goes to our stderr) and return its figures.
pub fn run(ws: &Workspace, dir: &Path, quick: bool) -> Result<(PluginTargets, Vec<PluginFigures>)> {
    let json = dir.join("plugin-bench.json");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&ws.root)
        .env("CARGO_TARGET_DIR", &ws.target_dir)
        .env("OCCOPUS_BENCH_JSON", &json)
        .args([
            "bench",
            "--quiet",
            "-p",
            "occopus-runtime",
            "--bench",
            "plugin",
        ])
        .stdout(Stdio::from(std::io::stderr()));
    if quick {
        cmd.env("OCCOPUS_BENCH_QUICK", "1");
    }
    let status = cmd.status().context("running cargo bench")?;
    if !status.success() {
        bail!("`cargo bench -p occopus-runtime --bench plugin` failed (see above)");
    }
    let text = std::fs::read_to_string(&json).with_context(|| {
        format!(
            "the runtime benchmark wrote no figures to {} (does it honour OCCOPUS_BENCH_JSON?)",
            json.display()
        )
    })?;
    parse(&text)
}

/// Read the runtime benchmark's JSON document.
pub fn parse(text: &str) -> Result<(PluginTargets, Vec<PluginFigures>)> {
    let v: Value = serde_json::from_str(text).context("the plugin figures are not JSON")?;
    let num = |v: &Value, k: &str| -> Result<f64> {
        v.get(k)
            .and_then(Value::as_f64)
            .with_context(|| format!("plugin figures lack the number `{k}`"))
    };
    let string = |v: &Value, k: &str| -> Result<String> {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("plugin figures lack the string `{k}`"))
    };
    let t = v.get("targets").context("plugin figures lack `targets`")?;
    let targets = PluginTargets {
        cache_load_us: num(t, "cache_load_us")?,
        instantiate_us: num(t, "instantiate_us")?,
        call_us: num(t, "call_us")?,
    };
    let plugins = v
        .get("plugins")
        .and_then(Value::as_array)
        .context("plugin figures lack `plugins`")?
        .iter()
        .map(|p| {
            Ok(PluginFigures {
                plugin: string(p, "plugin")?,
                kind: string(p, "kind")?,
                component_kib: num(p, "component_bytes")? / 1024.0,
                first_compile_ms: num(p, "first_compile_ms")?,
                cache_load_us: num(p, "cache_load_us")?,
                instantiate_us: num(p, "instantiate_us")?,
                call_us: num(p, "call_us")?,
                call: string(p, "call")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if plugins.is_empty() {
        bail!("the runtime benchmark reported no plugin");
    }
    Ok((targets, plugins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runtime_benchmark_document() {
        let doc = r#"{
          "benchmark": "plugin", "quick": true,
          "targets": {"cache_load_us": 1000.0, "instantiate_us": 100.0, "call_us": 5.0},
          "plugins": [{"plugin": "sim", "kind": "resource-handler", "component_bytes": 204800,
                       "first_compile_ms": 812.5, "cache_load_us": 420.0,
                       "instantiate_us": 12.5, "call_us": 3.25, "call": "state"}]
        }"#;
        let (t, p) = parse(doc).unwrap();
        assert_eq!(t.instantiate_us, 100.0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].plugin, "sim");
        assert_eq!(p[0].component_kib, 200.0);
        assert_eq!(p[0].call, "state");
        let e = parse(r#"{"targets": {}, "plugins": []}"#).unwrap_err();
        assert!(format!("{e:#}").contains("cache_load_us"), "{e:#}");
    }
}
