//! Load-time refusals: each names the file and the problem, and never stops the other
//! plugins from loading.

use crate::common::*;
use crate::fixtures;
use occopus_model::plugin::PluginHost;
use occopus_runtime::{PluginGrant, Runtime};

fn only_error(rt: &Runtime) -> String {
    assert_eq!(rt.load_errors().len(), 1, "{:?}", rt.load_errors());
    rt.load_errors()[0].to_string()
}

#[tokio::test]
async fn duplicate_types_are_refused_naming_both_files() {
    let a = fixtures::plugin_dir(&["echo"]);
    let b = tempfile::tempdir().unwrap();
    // Same plugin name, same bytes: an identical copy is skipped silently.
    std::fs::copy(fixtures::fixture("echo"), b.path().join("copy.wasm")).unwrap();
    let mut cfg = config(a.path());
    cfg.plugin_dirs.push(b.path().to_path_buf());
    let rt = Runtime::load(cfg.clone()).await.unwrap();
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    assert_eq!(rt.plugins().len(), 1);

    // A different component claiming the same plugin name is refused, naming both files.
    // (Append a custom section: same code, different bytes and digest.)
    let mut bytes = std::fs::read(fixtures::fixture("echo")).unwrap();
    bytes.extend_from_slice(&[0x00, 0x06, 0x03, b'x', b'y', b'z', 0x01, 0x02]);
    std::fs::write(b.path().join("copy.wasm"), &bytes).unwrap();
    let rt = Runtime::load(cfg).await.unwrap();
    let e = only_error(&rt);
    assert!(e.contains("copy.wasm"), "{e}");
    assert!(
        e.contains(&a.path().join("echo.wasm").display().to_string()),
        "{e}"
    );
    assert!(
        e.contains("plugin `fixture-echo` is already loaded from"),
        "{e}"
    );
    assert!(
        rt.resource_handler("fixture-echo").is_ok(),
        "the first one is kept"
    );
}

#[tokio::test]
async fn bad_metadata_is_refused_and_others_still_load() {
    let (rt, dir) = load(&["bad-metadata", "echo"]).await;
    let e = only_error(&rt);
    assert!(
        e.starts_with(&dir.path().join("bad-metadata.wasm").display().to_string()),
        "{e}"
    );
    assert!(
        e.contains("bad metadata: name `Bad Name!` is not 1 to 63 of [a-z0-9-]"),
        "{e}"
    );
    assert!(e.contains("type `fixture-bad`: invalid JSON Schema"), "{e}");
    assert!(rt.resource_handler("fixture-echo").is_ok());
}

#[tokio::test]
async fn process_import_needs_the_grant() {
    let (rt, dir) = load(&["process", "echo"]).await;
    let e = only_error(&rt);
    assert!(
        e.starts_with(&dir.path().join("process.wasm").display().to_string()),
        "{e}"
    );
    assert!(
        e.contains("plugin `fixture-process` imports occopus:plugin/process but the `process` capability is not granted to it; grant it with plugins.fixture-process.process: true in the operator config"),
        "{e}"
    );
    let (rt, _dir) = load_with(&["process"], |c| {
        c.plugins.insert(
            "fixture-process".into(),
            PluginGrant {
                process: Some(true),
                ..Default::default()
            },
        );
    })
    .await;
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    let info = rt.plugin("fixture-process").unwrap();
    assert_eq!(info.requested, vec!["process".to_string()]);
    assert_eq!(info.granted, vec!["process".to_string()]);
}

#[tokio::test]
async fn non_components_and_pinned_digests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm at all").unwrap();
    // A core module (not a component).
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::copy(fixtures::fixture("echo"), dir.path().join("pinned.wasm")).unwrap();
    std::fs::write(
        dir.path().join("pinned.toml"),
        format!("sha256 = \"{}\"\n", "0".repeat(64)),
    )
    .unwrap();
    let rt = Runtime::load(config(dir.path())).await.unwrap();
    let errs: Vec<String> = rt.load_errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("junk.wasm: not a usable WebAssembly component")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("core.wasm: not a usable WebAssembly component")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("pinned.wasm: digest mismatch")),
        "{errs:?}"
    );

    let digest =
        occopus_runtime::cache::sha256_hex(&std::fs::read(fixtures::fixture("echo")).unwrap());
    std::fs::write(
        dir.path().join("pinned.toml"),
        format!("sha256 = \"sha256:{digest}\"\n"),
    )
    .unwrap();
    let rt = Runtime::load(config(dir.path())).await.unwrap();
    assert!(
        rt.resource_handler("fixture-echo").is_ok(),
        "{:?}",
        rt.load_errors()
    );
}

#[tokio::test]
async fn a_missing_plugin_dir_is_reported() {
    let mut cfg = config(std::path::Path::new("/nonexistent/occopus-plugins"));
    let empty = fixtures::plugin_dir(&[]);
    cfg.plugin_dirs.push(empty.path().to_path_buf());
    let rt = Runtime::load(cfg).await.unwrap();
    let e = only_error(&rt);
    assert!(
        e.starts_with("/nonexistent/occopus-plugins: cannot read plugin directory"),
        "{e}"
    );
}

#[tokio::test]
async fn an_incompatible_abi_is_refused_naming_both_versions() {
    let (rt, dir) = load(&["abi-mismatch", "echo"]).await;
    let e = only_error(&rt);
    assert_eq!(
        e,
        format!(
            "{}: ABI mismatch: the component exports `occopus:plugin/resource-handler@0.2.0`, but this host speaks occopus:plugin@0.1.0 (compatible: occopus:plugin@0.1.x); rebuild the plugin against that version or use an Occopus that speaks 0.2.0",
            dir.path().join("abi-mismatch.wasm").display()
        )
    );
    assert!(rt.resource_handler("fixture-echo").is_ok());
}

/// Every fixture is exercised: all of them in one directory load, except exactly the
/// ones built to be refused.
#[tokio::test]
async fn every_fixture_loads_or_is_refused_on_purpose() {
    let names = fixtures::fixture_names();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (rt, dir) = load(&refs).await;
    let mut refused: Vec<String> = rt
        .load_errors()
        .iter()
        .map(|e| {
            e.path
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        ["abi-mismatch.wasm", "bad-metadata.wasm", "process.wasm"],
        "{:?}",
        rt.load_errors()
    );
    assert_eq!(rt.plugins().len(), names.len() - 3);
}
