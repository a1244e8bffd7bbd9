//! Host-side end-to-end tests of the `local` plugin live in `tests/`: they load the built
//! component (`<target>/plugins/local.wasm`, from `cargo xtask build-plugins --only local`)
//! into the real `occopus-runtime` and start real processes on loopback. This library is
//! empty; it must not grow code the tests could depend on instead of the plugin.
