//! The `local` component for the tests: `<target>/plugins/local.wasm`, built on first use
//! with `cargo xtask build-plugins` into this test binary's target directory (serialised
//! across test processes by a file lock).

use std::path::PathBuf;

/// The built component (built on first use in this test process).
pub fn path() -> PathBuf {
    let wasm = occopus_tests::plugin_dir().join("local.wasm");
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    wasm
}
