//! Engine overhead: build then destroy generated graphs with zero-latency in-process
//! plugins and the real file store (fsync on), printing wall time, time per node, journal
//! syncs and peak RSS. Each case runs in a child process of this binary so memory peaks
//! do not mix.
//!
//! `cargo bench -p occopus-engine` runs every case; `cargo bench -p occopus-engine --
//! chain:1000` runs the named ones.

#[path = "../tests/support/mod.rs"]
mod support;

use occopus_engine::{BuildOptions, DestroyOptions, Engine, EngineOptions, NoCredentials};
use occopus_model::ResolvedInfra;
use occopus_state::FileStore;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use support::{Cloud, FakeHost, infra, node};

const CASE_ENV: &str = "OCCOPUS_BENCH_CASE";

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

/// `shape` at `n` nodes.
fn graph(shape: &str, n: usize) -> Option<ResolvedInfra> {
    let names = names(n);
    let nodes = names.iter().map(|s| node(s, 1, 1)).collect();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    match shape {
        "chain" => edges.extend((1..n).map(|i| (i, i - 1))),
        "fanout" => edges.extend((1..n).map(|i| (i, 0))),
        "layered" => {
            let w = (n as f64).sqrt().round() as usize;
            for i in w..n {
                let (layer, j) = (i / w, i % w);
                let above = (layer - 1) * w;
                edges.push((i, above + j));
                edges.push((i, above + (j + 1) % w));
            }
        }
        _ => return None,
    }
    let pairs: Vec<(&str, &str)> = edges
        .iter()
        .map(|&(a, b)| (names[a].as_str(), names[b].as_str()))
        .collect();
    Some(infra(nodes, &pairs))
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Run one case in this process; print one line.
fn run_case(case: &str) -> Result<(), String> {
    let (shape, n) = case
        .split_once(':')
        .and_then(|(s, n)| Some((s, n.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("bad case `{case}` (want shape:count)"))?;
    let desc = graph(shape, n).ok_or_else(|| format!("unknown shape `{shape}`"))?;
    let dir = tempfile::TempDir::new().map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let store = FileStore::open(dir.path()).map_err(|e| e.to_string())?;
        let cloud = Cloud::new();
        cloud.record_calls.store(false, Ordering::Relaxed);
        let engine = Engine::new(
            FakeHost::new(cloud.clone()),
            Arc::new(store.clone()),
            EngineOptions::default(),
        );
        let t = Instant::now();
        let report = engine
            .build(&desc, Arc::new(NoCredentials), BuildOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let build = t.elapsed();
        let build_syncs = store.stats().syncs;
        let build_peak = peak_rss_kb();
        let t = Instant::now();
        engine
            .destroy(&report.infra_id, Arc::new(NoCredentials), DestroyOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let destroy = t.elapsed();
        if !cloud.alive().is_empty() || report.created != n {
            return Err("the benchmark did not build and destroy everything".into());
        }
        println!(
            "{shape:>8} {n:>6}  build {:>7.1} ms ({:>5.1} us/node, {:>4} syncs)  destroy {:>7.1} ms ({:>5.1} us/node)  peak RSS {:>5.1} MB (build {:>5.1} MB)",
            build.as_secs_f64() * 1e3,
            build.as_secs_f64() * 1e6 / n as f64,
            build_syncs,
            destroy.as_secs_f64() * 1e3,
            destroy.as_secs_f64() * 1e6 / n as f64,
            peak_rss_kb() as f64 / 1024.0,
            build_peak as f64 / 1024.0,
        );
        Ok(())
    })
}

fn main() {
    if let Ok(case) = std::env::var(CASE_ENV) {
        if let Err(e) = run_case(&case) {
            eprintln!("{case}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.contains(':'))
        .collect();
    let cases: Vec<String> = if picked.is_empty() {
        ["chain", "fanout", "layered"]
            .iter()
            .flat_map(|s| [1_000, 10_000].map(|n| format!("{s}:{n}")))
            .collect()
    } else {
        picked
    };
    let Ok(me) = std::env::current_exe() else {
        eprintln!("cannot find the benchmark binary");
        std::process::exit(1);
    };
    let mut failed = false;
    for case in cases {
        let status = std::process::Command::new(&me)
            .env(CASE_ENV, &case)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("case {case} failed");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
