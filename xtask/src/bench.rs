//! `cargo xtask bench [--quick] [--out FILE] [--no-terraform] [--no-plugin-bench]
//! [--only PART]... [--shape SHAPE]...`: the performance promises of the design brief,
//! measured side by side.
//!
//! 1. **Scale**: whole `occopus build` and `occopus destroy` processes on generated
//!    graphs (chain, fan-out, layered) of 100, 1,000 and 10,000 zero-latency `sim` nodes,
//!    each run with a fresh file state store: wall time, CPU time and peak RSS of the
//!    child (from `wait4`), median and range over several runs, time per node.
//! 2. **Critical path**: the same shapes with seeded per-node latencies (each node its
//!    own node type carrying fixed `create_ms`/`ready_after_ms`, so the critical path is
//!    computed exactly), makespan over critical path.
//! 3. **Terraform**: where `terraform` is on `PATH`, the same graphs as built-in
//!    `terraform_data` resources (`apply`, `destroy`), and the ratio to `occopus`.
//! 4. **Plugins**: the runtime's plugin benchmark (`cargo bench -p occopus-runtime
//!    --bench plugin`).
//!
//! Prints a table on stdout and rewrites `docs/benchmarks.md` (or `--out FILE`).
//! `--quick` is a smoke run of the harness (10 and 30 nodes, one run, debug build, no
//! plugin benchmark): its figures mean nothing, it proves the command works.
//!
//! Owns: generating workloads, running and measuring them, and the report. Must not:
//! change the product's behaviour to flatter a figure, or hide a missed target.

mod doc;
mod graph;
mod machine;
mod measure;
mod plugins;
mod report;
mod table;

use crate::workspace::{Workspace, cargo};
use anyhow::{Context, Result, bail};
use graph::{Graph, Latency, Shape};
use measure::Sample;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Seed of the per-node latencies of the critical-path cases.
const LATENCY_SEED: u64 = 20_251_203;
/// Latency ranges of the critical-path cases, milliseconds.
const CREATE_MS: [u64; 2] = [50, 200];
const READY_MS: [u64; 2] = [20, 100];
/// Concurrent calls granted to the `sim` plugin in the critical-path cases (the runtime's
/// default is 8): enough for every leaf of the 1,000-node fan-out at once (the `sim`
/// plugin sleeps inside `create`, so each create in flight holds an instance; the
/// runtime's instance pool grows to fit the grant).
const SIM_MAX_INSTANCES: usize = 1_024;
/// `--parallelism` of the critical-path cases: no engine-side limit.
const UNLIMITED: usize = 100_000;
/// After a first run this slow, a case is not repeated (keeps the full run in budget).
const SLOW_RUN: Duration = Duration::from_secs(20);
/// A `terraform apply` or `destroy` still running after this long is stopped and reported
/// as "more than" this (a lower bound): Terraform's cost grows faster than linearly with
/// a long dependency chain, and one such run would otherwise take most of the budget.
const TF_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    scale: bool,
    cp: bool,
    shapes: Vec<Shape>,
    out: Option<PathBuf>,
    terraform: bool,
    plugin_bench: bool,
    release: bool,
    /// Keep the scratch directory (generated descriptions, outputs) and print its path.
    keep: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        quick: false,
        scale: true,
        cp: true,
        shapes: Vec::new(),
        out: None,
        terraform: true,
        plugin_bench: true,
        release: false,
        keep: false,
    };
    let mut only: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--only" => only.push(it.next().context("--only needs a part")?.clone()),
            "--shape" => {
                let name = it.next().context("--shape needs a shape")?;
                o.shapes.push(
                    Shape::ALL
                        .into_iter()
                        .find(|s| s.name() == name)
                        .with_context(|| {
                            format!("unknown shape `{name}` (chain, fan-out or layered)")
                        })?,
                );
            }
            "--out" => o.out = Some(it.next().context("--out needs a file")?.into()),
            "--no-terraform" => o.terraform = false,
            "--no-plugin-bench" => o.plugin_bench = false,
            "--release" => o.release = true,
            "--keep" => o.keep = true,
            other => bail!(
                "unknown option `{other}` (expected --quick, --out FILE, --no-terraform, --no-plugin-bench, --release, --keep, --only PART, --shape SHAPE)"
            ),
        }
    }
    if !only.is_empty() {
        for part in &only {
            if !["scale", "cp", "terraform", "plugins"].contains(&part.as_str()) {
                bail!("unknown part `{part}` (scale, cp, terraform or plugins)");
            }
        }
        let has = |p: &str| only.iter().any(|o| o == p);
        o.scale = has("scale");
        o.cp = has("cp");
        o.terraform &= has("terraform");
        o.plugin_bench &= has("plugins");
    }
    if o.shapes.is_empty() {
        o.shapes = Shape::ALL.to_vec();
    }
    if !o.quick {
        o.release = true;
    } else {
        // The quick run is a smoke test of the harness; the plugin benchmark would
        // compile the runtime in the release profile just to print numbers.
        o.plugin_bench = false;
    }
    Ok(o)
}

/// What each part of the benchmark runs.
struct Plan {
    shapes: Vec<Shape>,
    scale_sizes: Vec<usize>,
    runs: usize,
    cp_sizes: Vec<usize>,
    tf_sizes: Vec<usize>,
}

impl Plan {
    fn new(quick: bool, shapes: Vec<Shape>) -> Self {
        if quick {
            Self {
                shapes,
                scale_sizes: vec![10, 30],
                runs: 1,
                cp_sizes: vec![10],
                tf_sizes: vec![10, 30],
            }
        } else {
            Self {
                shapes,
                scale_sizes: vec![100, 1_000, 10_000],
                runs: 3,
                cp_sizes: vec![100, 1_000],
                tf_sizes: vec![100, 1_000],
            }
        }
    }
}

/// The `occopus` binary with a private home: cache, config and data directories in the
/// benchmark's scratch directory, nothing inherited from the caller's environment.
struct Occopus {
    bin: PathBuf,
    home: PathBuf,
}

impl Occopus {
    fn cmd(&self, state: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.home)
            .env_remove("OCCOPUS_STATE_DIR")
            .env_remove("OCCOPUS_CONFIG")
            .env_remove("OCCOPUS_AUTH_DATA_PATH")
            .env_remove("OCCOPUS_PLUGIN_PATH")
            .env_remove("RUST_LOG")
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_DATA_HOME", self.home.join("data"))
            .arg("--state-dir")
            .arg(state);
        c
    }
}

/// Scratch files of one run.
fn out_files(dir: &Path, what: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{what}.out")),
        dir.join(format!("{what}.err")),
    )
}

/// Write `infra.yaml` and `nodes/node_definitions.yaml` for `g` into `dir`.
fn write_description(dir: &Path, g: &Graph, lat: Option<&[Latency]>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir.join("nodes"))?;
    let name = format!(
        "bench-{}-{}{}",
        g.shape.name(),
        g.len(),
        if lat.is_some() { "-lat" } else { "" }
    );
    let infra = dir.join("infra.yaml");
    std::fs::write(&infra, graph::occopus_infra(g, &name, lat.is_some()))?;
    std::fs::write(
        dir.join("nodes/node_definitions.yaml"),
        graph::occopus_node_defs(lat),
    )?;
    Ok(infra)
}

/// One timed build and destroy of a zero-latency graph with a fresh state store.
fn build_and_destroy(occ: &Occopus, infra: &Path, work: &Path) -> Result<(Sample, Sample)> {
    let state = work.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    let (o, e) = out_files(work, "build");
    let build = measure::run(occ.cmd(&state).args(["-q", "build"]).arg(infra), &o, &e)
        .context("occopus build")?;
    let id = std::fs::read_to_string(&o)?.trim().to_string();
    if id.is_empty() {
        bail!("occopus build printed no infrastructure id");
    }
    let (o, e) = out_files(work, "destroy");
    let destroy = measure::run(occ.cmd(&state).args(["-q", "destroy", &id]), &o, &e)
        .context("occopus destroy")?;
    std::fs::remove_dir_all(&state)?;
    Ok((build, destroy))
}

fn scale(occ: &Occopus, plan: &Plan, work: &Path) -> Result<Vec<report::ScaleCase>> {
    let mut cases = Vec::new();
    for &n in &plan.scale_sizes {
        for &shape in &plan.shapes {
            let g = Graph::new(shape, n);
            let dir = work.join(format!("zero-{}-{n}", shape.name()));
            let infra = write_description(&dir, &g, None)?;
            let mut case = report::ScaleCase {
                shape,
                n,
                build: Vec::new(),
                destroy: Vec::new(),
            };
            for run in 0..plan.runs {
                let (b, d) = build_and_destroy(occ, &infra, &dir)
                    .with_context(|| format!("{} of {n} nodes, run {}", shape.name(), run + 1))?;
                eprintln!(
                    "    {:<8} {:>6} nodes  run {}: build {:>9}  destroy {:>9}  peak {}",
                    shape.name(),
                    n,
                    run + 1,
                    doc::dur(b.wall.as_secs_f64()),
                    doc::dur(d.wall.as_secs_f64()),
                    doc::mib(b.max_rss_kib as f64)
                );
                case.build.push(b);
                case.destroy.push(d);
                if b.wall + d.wall > SLOW_RUN {
                    break;
                }
            }
            cases.push(case);
        }
    }
    Ok(cases)
}

fn critical_path(occ: &Occopus, plan: &Plan, work: &Path) -> Result<Vec<report::CpCase>> {
    let grant = format!("plugins:\n  sim: {{max_instances: {SIM_MAX_INSTANCES}}}\n");
    let config = work.join("sim-wide.yaml");
    std::fs::write(&config, &grant)?;
    // The same, with staging off: the fan-out at the largest size runs once more with
    // it, to show what staging does.
    let no_staging = work.join("sim-wide-no-staging.yaml");
    std::fs::write(&no_staging, format!("{grant}engine: {{stage: false}}\n"))?;
    let largest = plan.cp_sizes.iter().copied().max().unwrap_or(0);
    let mut cases = Vec::new();
    for &n in &plan.cp_sizes {
        for &shape in &plan.shapes {
            let g = Graph::new(shape, n);
            let lat = graph::latencies(n, LATENCY_SEED, CREATE_MS, READY_MS);
            let dir = work.join(format!("lat-{}-{n}", shape.name()));
            let infra = write_description(&dir, &g, Some(&lat))?;
            let weight: Vec<u64> = lat.iter().map(|l| l.create_ms + l.ready_after_ms).collect();
            let mut variants = vec![(true, &config)];
            if shape == Shape::FanOut && n == largest {
                variants.push((false, &no_staging));
            }
            for (staging, config) in variants {
                let runs = cp_runs(occ, plan, &dir, config, &infra, &g)
                    .with_context(|| format!("{} with latencies, {n} nodes", shape.name()))?;
                let mut case =
                    report::CpCase::from_runs(shape, n, g.depth(), g.critical_path(&weight), runs)
                        .context("no run of the critical-path case")?;
                case.staging = staging;
                eprintln!(
                    "    {:<8} {:>6} nodes{}: critical path {} ms, makespan {:.0} ms (median of {}), ratio {:.3}",
                    shape.name(),
                    n,
                    if staging { "" } else { ", no staging" },
                    case.critical_ms,
                    case.engine_ms,
                    case.makespans_ms.len(),
                    case.ratio()
                );
                cases.push(case);
            }
        }
    }
    Ok(cases)
}

/// The runs of one critical-path case (one, if the first is slow: the 1,000-node chain
/// takes minutes), each with a fresh state store.
fn cp_runs(
    occ: &Occopus,
    plan: &Plan,
    dir: &Path,
    config: &Path,
    infra: &Path,
    g: &Graph,
) -> Result<Vec<report::CpRun>> {
    let state = dir.join("state");
    let mut runs: Vec<report::CpRun> = Vec::new();
    for _ in 0..plan.runs {
        if state.exists() {
            std::fs::remove_dir_all(&state)?;
        }
        let (o, e) = out_files(dir, "build");
        let sample = measure::run(
            occ.cmd(&state)
                .arg("--config")
                .arg(config)
                .args(["--output", "json", "build", "--parallelism"])
                .arg(UNLIMITED.to_string())
                .arg(infra),
            &o,
            &e,
        )
        .context("occopus build")?;
        let lines = std::fs::read_to_string(&o)?;
        let lags = graph::start_lags(&lines, g);
        let last = lines
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_string)
            .context("occopus build --output json printed nothing")?;
        let result: Value =
            serde_json::from_str(&last).context("the last line of build output is not JSON")?;
        let engine_ms = result["elapsed_ms"]
            .as_f64()
            .context("the build result has no elapsed_ms")?;
        let id = result["infra_id"]
            .as_str()
            .context("the build result has no infra_id")?
            .to_string();
        let (o, e) = out_files(dir, "destroy");
        measure::run(occ.cmd(&state).args(["-q", "destroy", &id]), &o, &e)
            .context("occopus destroy")?;
        std::fs::remove_dir_all(&state)?;
        runs.push(report::CpRun {
            engine_ms,
            wall: sample.wall,
            cpu: sample.cpu,
            start_lag_ms: lags,
        });
        if sample.wall > SLOW_RUN {
            break;
        }
    }
    Ok(runs)
}

/// `terraform` on `PATH`, if any.
fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn terraform_cmd(bin: &Path, dir: &Path, cli_config: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env_remove("TF_PLUGIN_CACHE_DIR")
        .env_remove("TF_DATA_DIR")
        .env_remove("TF_LOG")
        .env_remove("TF_CLI_ARGS")
        .env_remove("TF_CLI_ARGS_apply")
        .env_remove("TF_CLI_ARGS_destroy");
    c
}

fn terraform(bin: &Path, plan: &Plan, work: &Path) -> Result<Vec<report::TfCase>> {
    let cli_config = work.join("terraformrc");
    std::fs::write(&cli_config, "")?;
    let mut cases = Vec::new();
    for &n in &plan.tf_sizes {
        for &shape in &plan.shapes {
            let g = Graph::new(shape, n);
            let dir = work.join(format!("tf-{}-{n}", shape.name()));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("main.tf"), graph::terraform_config(&g))?;
            let (o, e) = out_files(&dir, "init");
            measure::run(
                terraform_cmd(bin, &dir, &cli_config).args(["init", "-input=false", "-no-color"]),
                &o,
                &e,
            )
            .context("terraform init")?;
            let mut case = report::TfCase {
                shape,
                n,
                apply: Vec::new(),
                destroy: Vec::new(),
                apply_stopped: false,
                destroy_stopped: false,
            };
            for run in 0..plan.runs {
                let (o, e) = out_files(&dir, "apply");
                let a = match measure::run_limited(
                    terraform_cmd(bin, &dir, &cli_config).args([
                        "apply",
                        "-auto-approve",
                        "-input=false",
                        "-no-color",
                    ]),
                    &o,
                    &e,
                    Some(TF_LIMIT),
                )
                .context("terraform apply")?
                {
                    measure::Run::Done(a) => a,
                    measure::Run::Stopped(a) => {
                        eprintln!(
                            "    {:<8} {:>6} resources  run {}: apply stopped after {} (destroy not run)",
                            shape.name(),
                            n,
                            run + 1,
                            doc::dur(a.wall.as_secs_f64())
                        );
                        case.apply.push(a);
                        case.apply_stopped = true;
                        break;
                    }
                };
                let (o, e) = out_files(&dir, "destroy");
                let d = match measure::run_limited(
                    terraform_cmd(bin, &dir, &cli_config).args([
                        "destroy",
                        "-auto-approve",
                        "-input=false",
                        "-no-color",
                    ]),
                    &o,
                    &e,
                    Some(TF_LIMIT),
                )
                .context("terraform destroy")?
                {
                    measure::Run::Done(d) => d,
                    measure::Run::Stopped(d) => {
                        case.destroy_stopped = true;
                        d
                    }
                };
                eprintln!(
                    "    {:<8} {:>6} resources  run {}: apply {:>9}  destroy {:>9}",
                    shape.name(),
                    n,
                    run + 1,
                    doc::dur(a.wall.as_secs_f64()),
                    doc::dur(d.wall.as_secs_f64())
                );
                case.apply.push(a);
                case.destroy.push(d);
                if a.wall + d.wall > SLOW_RUN || case.destroy_stopped {
                    break;
                }
            }
            cases.push(case);
        }
    }
    Ok(cases)
}

fn terraform_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Terraform (version unknown)".into())
}

/// Build the `occopus` binary and the plugins; returns the binary.
fn set_up(ws: &Workspace, release: bool) -> Result<PathBuf> {
    eprintln!("==> building the plugins");
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let ok = Command::new(exe)
        .current_dir(&ws.root)
        .arg("build-plugins")
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .context("running build-plugins")?;
    if !ok.success() {
        bail!("building the plugins failed");
    }
    let profile = if release { "release" } else { "debug" };
    eprintln!("==> building occopus ({profile})");
    let mut c = Command::new(cargo());
    c.current_dir(&ws.root)
        .env("CARGO_TARGET_DIR", &ws.target_dir)
        .args(["build", "--quiet", "-p", "occopus-cli"]);
    if release {
        c.arg("--release");
    }
    if !c.status().context("running cargo build")?.success() {
        bail!("building occopus failed");
    }
    let bin = ws.target_dir.join(profile).join("occopus");
    if !bin.is_file() {
        bail!("no occopus binary at {}", bin.display());
    }
    Ok(bin)
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let ws = Workspace::load()?;
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| ws.root.join("docs/benchmarks.md"));
    let bin = set_up(&ws, o.release)?;
    let plan = Plan::new(o.quick, o.shapes.clone());

    let scratch = tempfile::Builder::new()
        .prefix("occopus-bench-")
        .tempdir()
        .context("creating a scratch directory")?;
    let work = scratch.path();
    let occ = Occopus {
        bin,
        home: work.join("home"),
    };
    std::fs::create_dir_all(&occ.home)?;
    let started = Instant::now();
    let busy_before = machine::machine_busy();
    let own_before = machine::own_cpu();

    // Warm-up: compiles the plugins into the (private) compiled-plugin cache, so every
    // measured process loads them from the cache as a user's second run does.
    eprintln!("==> warm-up (compiling the plugins into the cache)");
    let warm = work.join("warm-up");
    let infra = write_description(&warm, &Graph::new(Shape::Chain, 3), None)?;
    build_and_destroy(&occ, &infra, &warm).context("warm-up build")?;

    let scale = if o.scale {
        eprintln!("==> scale: zero-latency sim nodes, whole build and destroy processes");
        scale(&occ, &plan, work)?
    } else {
        Vec::new()
    };

    let cp = if o.cp {
        eprintln!("==> critical path: seeded latencies");
        critical_path(&occ, &plan, work)?
    } else {
        Vec::new()
    };

    let tf = match (o.terraform, find_on_path("terraform")) {
        (false, _) => report::TfStatus::Skipped("not run this time".into()),
        (true, None) => report::TfStatus::Skipped(
            "`terraform` is not on PATH on this machine, so only occopus was measured".into(),
        ),
        (true, Some(bin)) => {
            eprintln!("==> terraform: the same graphs as terraform_data resources");
            let version = terraform_version(&bin);
            report::TfStatus::Ran {
                version,
                cases: terraform(&bin, &plan, work)?,
            }
        }
    };

    let plugins = if o.plugin_bench {
        eprintln!("==> plugins: cargo bench -p occopus-runtime --bench plugin");
        match plugins::run(&ws, work, o.quick) {
            Ok((t, f)) => report::PluginStatus::Ran(t, f),
            Err(e) => {
                eprintln!("the plugin benchmark failed: {e:#}");
                report::PluginStatus::Failed(format!("{e:#}"))
            }
        }
    } else if o.quick {
        report::PluginStatus::Skipped("not run with --quick".into())
    } else {
        report::PluginStatus::Skipped("not run this time".into())
    };

    let r = report::Report {
        machine: machine::Machine::read(),
        date: machine::today(),
        quick: o.quick,
        profile: if o.release { "release" } else { "debug" },
        others_cpu: match (busy_before, machine::machine_busy()) {
            (Some(before), Some(after)) => Some(
                after
                    .saturating_sub(before)
                    .saturating_sub(machine::own_cpu().saturating_sub(own_before)),
            ),
            _ => None,
        },
        duration: started.elapsed(),
        scale,
        cp,
        tf,
        plugins,
        cp_setup: report::CpSetup {
            seed: LATENCY_SEED,
            create_ms: CREATE_MS,
            ready_ms: READY_MS,
            sim_max_instances: SIM_MAX_INSTANCES,
            runs: plan.runs,
            slow_run: SLOW_RUN,
        },
    };
    let doc = r.doc();
    println!("{}", doc.text());
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, doc.markdown()).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("report written to {}", out.display());
    if o.keep {
        let kept = scratch.keep();
        eprintln!(
            "scratch directory kept (generated descriptions, each run's output): {}",
            kept.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_quick_implies_debug_without_plugin_bench() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse(&s(&["--quick", "--out", "x.md"])).unwrap();
        assert!(o.quick && !o.release && !o.plugin_bench && o.terraform);
        assert_eq!(o.out.as_deref(), Some(Path::new("x.md")));
        let o = parse(&s(&["--no-terraform"])).unwrap();
        assert!(!o.quick && o.release && o.plugin_bench && !o.terraform && !o.keep);
        assert!(parse(&s(&["--keep"])).unwrap().keep);
        assert!(parse(&s(&["--fast"])).is_err());
        assert!(parse(&s(&["--out"])).is_err());
        let o = parse(&s(&[
            "--only", "cp", "--only", "plugins", "--shape", "fan-out",
        ]))
        .unwrap();
        assert!(!o.scale && o.cp && !o.terraform && o.plugin_bench);
        assert_eq!(o.shapes, [Shape::FanOut]);
        assert!(parse(&s(&["--only", "everything"])).is_err());
        assert!(parse(&s(&["--shape", "star"])).is_err());
    }
}
