//! Host-side end-to-end tests of the `docker` plugin live in `tests/`: they load the built
//! component (`<target>/plugins/docker.wasm`, from `cargo xtask build-plugins --only
//! docker`) into the real `occopus-runtime` and drive a real Docker Engine (the one
//! `scripts/testenv.sh up docker` provides). Without an engine they fail with a message
//! saying how to provide one, unless `OCCOPUS_SKIP_DOCKER_TESTS=1` is set.
//!
//! This library is empty; it must not grow code the tests could depend on instead of the
//! plugin.
