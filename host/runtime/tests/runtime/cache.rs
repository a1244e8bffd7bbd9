//! The compiled-artifact cache and run-time discovery.

use crate::common::*;
use crate::fixtures;
use occopus_model::plugin::PluginHost;
use occopus_runtime::{CacheOutcome, Runtime};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn outcome(rt: &Runtime, name: &str) -> CacheOutcome {
    rt.details()
        .into_iter()
        .find(|d| d.info.name == name)
        .expect("plugin loaded")
        .cache
}

#[tokio::test]
async fn miss_then_hit_then_recovery_from_a_corrupt_entry() {
    let dir = fixtures::plugin_dir(&["echo"]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("wasm");
    let mut cfg = config(dir.path());
    cfg.cache_dir = Some(cache_dir.clone());

    let rt = Runtime::load(cfg.clone()).await.unwrap();
    assert_eq!(outcome(&rt, "fixture-echo"), CacheOutcome::Miss);
    assert_eq!(
        std::fs::metadata(&cache_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let entries: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let digest = rt.plugin("fixture-echo").unwrap().digest;
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(digest.trim_start_matches("sha256:")) && name.ends_with(".cwasm"),
        "{name}"
    );
    drop(rt);

    let rt = Runtime::load(cfg.clone()).await.unwrap();
    assert_eq!(outcome(&rt, "fixture-echo"), CacheOutcome::Hit);
    drop(rt);

    // Damage the entry: it is deleted, recompiled, and the plugin works.
    std::fs::write(entry, b"\x7fELF not really").unwrap();
    let rt = Runtime::load(cfg.clone()).await.unwrap();
    assert_eq!(outcome(&rt, "fixture-echo"), CacheOutcome::Recovered);
    let v = rt
        .resource_handler("fixture-echo")
        .unwrap()
        .create(&create("fixture-echo", json!({"image": "a"})))
        .await
        .unwrap();
    assert_eq!(v["resource"]["image"], "a");
    drop(rt);
    let rt = Runtime::load(cfg.clone()).await.unwrap();
    assert_eq!(outcome(&rt, "fixture-echo"), CacheOutcome::Hit);
    drop(rt);

    // A truncated entry (half of a real artifact) is detected the same way.
    let whole = std::fs::read(entry).unwrap();
    std::fs::write(entry, &whole[..whole.len() / 2]).unwrap();
    let rt = Runtime::load(cfg).await.unwrap();
    assert_eq!(outcome(&rt, "fixture-echo"), CacheOutcome::Recovered);
    rt.resource_handler("fixture-echo")
        .unwrap()
        .create(&create("fixture-echo", json!({"image": "b"})))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(entry).unwrap(),
        whole,
        "the entry was rewritten whole"
    );
}

#[tokio::test]
async fn without_a_cache_dir_plugins_compile_in_memory() {
    let (rt, _d) = load(&["echo"]).await;
    assert_eq!(outcome(&rt, "fixture-echo"), CacheOutcome::Disabled);
    assert!(rt.cache_dir().is_none());
}

#[tokio::test]
async fn a_plugin_dropped_into_a_directory_is_picked_up_by_the_next_load() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::load(config(dir.path())).await.unwrap();
    assert!(rt.plugins().is_empty());
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    std::fs::copy(
        fixtures::fixture("echo"),
        dir.path().join("new-plugin.wasm"),
    )
    .unwrap();
    let rt = Runtime::load(config(dir.path())).await.unwrap();
    let rh = rt
        .resource_handler("fixture-echo")
        .expect("picked up without a rebuild");
    rh.create(&create("fixture-echo", json!({"image": "a"})))
        .await
        .unwrap();
}
