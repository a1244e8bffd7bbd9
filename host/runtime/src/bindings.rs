//! Host bindings generated from `wit/` (package `occopus:plugin@0.1.0`).
//!
//! Owns: one `bindgen!` for the host imports (world `host-api`) and one per plugin world,
//! which reuse the host-import and shared-type modules through `with`, so every host
//! interface has exactly one Rust trait to implement.
//!
//! Must not: contain logic; everything that interprets calls lives in `host/` and
//! `adapter.rs`.

#![allow(missing_docs, clippy::all)]

/// Host imports (`log`, `http`, `probe`, `clock`, `process`) and the shared `types`.
pub mod host_api {
    wasmtime::component::bindgen!({
        world: "host-api",
        path: "../../wit",
        imports: {
            "occopus:plugin/log.log": trappable,
            "occopus:plugin/clock.now-unix-ms": trappable,
            "occopus:plugin/clock.poll-after": trappable,
            default: async | trappable,
        },
    });
}

/// World `resource-handler-plugin`.
pub mod resource_handler {
    wasmtime::component::bindgen!({
        world: "resource-handler-plugin",
        path: "../../wit",
        exports: { default: async },
        with: {
            "occopus:plugin/types": super::host_api::occopus::plugin::types,
            "occopus:plugin/log": super::host_api::occopus::plugin::log,
            "occopus:plugin/http": super::host_api::occopus::plugin::http,
            "occopus:plugin/probe": super::host_api::occopus::plugin::probe,
            "occopus:plugin/clock": super::host_api::occopus::plugin::clock,
            "occopus:plugin/process": super::host_api::occopus::plugin::process,
        },
    });
}

/// World `health-checker-plugin`.
pub mod health_checker {
    wasmtime::component::bindgen!({
        world: "health-checker-plugin",
        path: "../../wit",
        exports: { default: async },
        with: {
            "occopus:plugin/types": super::host_api::occopus::plugin::types,
            "occopus:plugin/log": super::host_api::occopus::plugin::log,
            "occopus:plugin/http": super::host_api::occopus::plugin::http,
            "occopus:plugin/probe": super::host_api::occopus::plugin::probe,
            "occopus:plugin/clock": super::host_api::occopus::plugin::clock,
            "occopus:plugin/process": super::host_api::occopus::plugin::process,
        },
    });
}

/// World `config-manager-plugin`.
pub mod config_manager {
    wasmtime::component::bindgen!({
        world: "config-manager-plugin",
        path: "../../wit",
        exports: { default: async },
        with: {
            "occopus:plugin/types": super::host_api::occopus::plugin::types,
            "occopus:plugin/log": super::host_api::occopus::plugin::log,
            "occopus:plugin/http": super::host_api::occopus::plugin::http,
            "occopus:plugin/probe": super::host_api::occopus::plugin::probe,
            "occopus:plugin/clock": super::host_api::occopus::plugin::clock,
            "occopus:plugin/process": super::host_api::occopus::plugin::process,
        },
    });
}
