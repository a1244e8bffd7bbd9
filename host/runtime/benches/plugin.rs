//! Plugin start-up and call overhead, per built-in plugin (`sim`, `basic`, `dummy`):
//!
//! * **first compile**: Cranelift compiling the component into an empty cache (reported);
//! * **load from cache**: reading the compiled artifact back (target ≤ 1 ms);
//! * **instantiation**: a fresh instance from the plugin's `InstancePre` (target ≤ 100 µs);
//! * **per call**: one pure export call through the engine's plugin trait on a pooled
//!   instance — JSON, policy, budget and all (target ≤ 5 µs).
//!
//! Run with `cargo bench -p occopus-runtime` (the plugins are built first, as the tests
//! do). Prints a table; with `OCCOPUS_BENCH_JSON=<path>` also writes the figures as JSON
//! for `cargo xtask bench`. `OCCOPUS_BENCH_QUICK=1` takes fewer samples.

#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use occopus_model::ids::{InfraId, NodeId, NodeName};
use occopus_model::instance::Addresses;
use occopus_model::plugin::{
    CmNodeRequest, HealthRequest, InstanceRef, NodeContext, PluginHost, PluginKind,
};
use occopus_runtime::cache::{ArtifactCache, CacheOutcome, sha256_hex};
use occopus_runtime::{Runtime, RuntimeConfig, engine};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TARGET_CACHE_LOAD_US: f64 = 1000.0;
const TARGET_INSTANTIATE_US: f64 = 100.0;
const TARGET_CALL_US: f64 = 5.0;

/// Figures of one plugin, microseconds (medians) except `first_compile_ms`.
#[derive(Debug, serde::Serialize)]
struct Figures {
    plugin: String,
    kind: PluginKind,
    component_bytes: u64,
    first_compile_ms: f64,
    cache_load_us: f64,
    instantiate_us: f64,
    call_us: f64,
    /// The export measured for `call_us`.
    call: &'static str,
}

fn node() -> NodeContext {
    NodeContext {
        infra_id: InfraId::new("bench"),
        infra_name: "bench".into(),
        node_name: NodeName::new_unchecked("node"),
        node_id: NodeId::new("bench-node-1"),
        user_id: None,
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

/// Median of `n` timings of `f` (after a warm-up of `n / 10`).
fn time_sync(n: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// Median per-iteration time of `n` runs of an async `f`, timed in batches of `batch` so
/// the clock's own cost does not dominate microsecond figures.
async fn time_async<F, Fut>(n: usize, batch: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..(n / 10).max(1) {
        f().await;
    }
    let mut samples = Vec::new();
    for _ in 0..(n / batch).max(1) {
        let t = Instant::now();
        for _ in 0..batch {
            f().await;
        }
        samples.push(t.elapsed() / batch as u32);
    }
    median(samples)
}

async fn bench_plugin(name: &str, quick: bool) -> Figures {
    let path = fixtures::builtin(name);
    let wasm = std::fs::read(&path).expect("read component");
    let digest = sha256_hex(&wasm);
    let (compiles, loads, inst_n, calls) = if quick {
        (1, 50, 200, 5_000)
    } else {
        (3, 300, 2_000, 50_000)
    };

    // Compile into an empty cache (a fresh directory each time), then load from it.
    let eng = engine::build_engine(16).expect("engine");
    let mut compile = Vec::new();
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut cache = ArtifactCache::new(&eng, None);
    for i in 0..compiles {
        cache = ArtifactCache::new(&eng, Some(&scratch.path().join(format!("c{i}"))));
        let t = Instant::now();
        let (_, o) = cache
            .load_or_compile(&eng, &wasm, &digest)
            .expect("compile");
        compile.push(t.elapsed());
        assert_eq!(o, CacheOutcome::Miss);
    }
    let first_compile_ms = median(compile) / 1000.0;
    let cache_load_us = time_sync(loads, || {
        let (_, o) = cache.load_or_compile(&eng, &wasm, &digest).expect("load");
        assert_eq!(o, CacheOutcome::Hit);
    });

    // A runtime over just this plugin.
    let dir = fixtures::builtin_dir(&[name]);
    let rt = Runtime::load(RuntimeConfig {
        plugin_dirs: vec![dir.path().to_path_buf()],
        builtin_dirs: false,
        env_plugin_path: false,
        cache_dir: Some(scratch.path().join("rt")),
        max_live_instances: 64,
        ..RuntimeConfig::default()
    })
    .await
    .expect("runtime");
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    let info = rt.plugins().into_iter().next().expect("plugin loaded");
    let instantiate_us = time_async(inst_n, 10, || async {
        rt.instantiate_once(&info.name).await.expect("instantiate")
    })
    .await;

    let (call, call_us) = match name {
        "sim" => {
            let rh = rt.resource_handler("sim").unwrap();
            let resource = json!({"type": "sim"});
            let mut req = occopus_model::plugin::CreateRequest {
                node: node(),
                type_name: "sim".into(),
                resource: resource.clone(),
                context: None,
                attributes: Value::Null,
                credentials: None,
            };
            req.resource = resource.clone();
            let instance = rh.create(&req).await.expect("create");
            let r = InstanceRef {
                node: node(),
                type_name: "sim".into(),
                resource,
                credentials: None,
                instance,
            };
            (
                "state",
                time_async(calls, 100, || async {
                    rh.state(&r).await.expect("state");
                })
                .await,
            )
        }
        "basic" => {
            let hc = rt.health_checker("basic").unwrap();
            let req = HealthRequest {
                node: node(),
                type_name: "basic".into(),
                section: json!({"ping": false}),
                addresses: Addresses {
                    primary: Some("127.0.0.1".into()),
                    private: None,
                    all: vec![],
                },
            };
            (
                "check",
                time_async(calls, 100, || async {
                    hc.check(&req).await.expect("check");
                })
                .await,
            )
        }
        "dummy" => {
            let cm = rt.config_manager("dummy").unwrap();
            let req = CmNodeRequest {
                node: node(),
                type_name: "dummy".into(),
                section: json!({"type": "dummy"}),
                credentials: None,
                attributes: Value::Null,
                addresses: Addresses::default(),
            };
            (
                "node-state",
                time_async(calls, 100, || async {
                    cm.node_state(&req).await.expect("node-state");
                })
                .await,
            )
        }
        other => panic!("no call defined for plugin `{other}`"),
    };
    Figures {
        plugin: info.name,
        kind: info.kind,
        component_bytes: wasm.len() as u64,
        first_compile_ms,
        cache_load_us,
        instantiate_us,
        call_us,
        call,
    }
}

fn mark(v: f64, target: f64) -> &'static str {
    if v <= target { "" } else { " (!)" }
}

fn main() {
    let quick = std::env::var("OCCOPUS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    // Build the plugins before timing anything.
    fixtures::built_dir();
    let figures: Vec<Figures> = fixtures::BUILTIN
        .iter()
        .map(|n| rt.block_on(bench_plugin(n, quick)))
        .collect();

    println!();
    println!(
        "{:<8} {:<16} {:>9} {:>13} {:>15} {:>15} {:>18}",
        "plugin", "kind", "KiB", "1st compile", "load (cache)", "instantiate", "call"
    );
    println!(
        "{:<8} {:<16} {:>9} {:>13} {:>15} {:>15} {:>18}",
        "", "", "", "", "target ≤1 ms", "target ≤100 µs", "target ≤5 µs"
    );
    for f in &figures {
        println!(
            "{:<8} {:<16} {:>9.0} {:>10.1} ms {:>12.1} µs{} {:>12.1} µs{} {:>9.2} µs {:<10}{}",
            f.plugin,
            f.kind.as_str(),
            f.component_bytes as f64 / 1024.0,
            f.first_compile_ms,
            f.cache_load_us,
            mark(f.cache_load_us, TARGET_CACHE_LOAD_US),
            f.instantiate_us,
            mark(f.instantiate_us, TARGET_INSTANTIATE_US),
            f.call_us,
            format!("({})", f.call),
            mark(f.call_us, TARGET_CALL_US),
        );
    }
    println!("(medians; (!) marks a figure above its target)");

    if let Some(path) = std::env::var_os("OCCOPUS_BENCH_JSON") {
        let doc = json!({
            "benchmark": "plugin",
            "quick": quick,
            "targets": {
                "cache_load_us": TARGET_CACHE_LOAD_US,
                "instantiate_us": TARGET_INSTANTIATE_US,
                "call_us": TARGET_CALL_US,
            },
            "plugins": figures,
        });
        let text = serde_json::to_string_pretty(&doc).expect("json");
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!(
                "cannot write {}: {e}",
                std::path::Path::new(&path).display()
            );
            std::process::exit(1);
        }
        eprintln!(
            "figures written to {}",
            std::path::Path::new(&path).display()
        );
    }
}
