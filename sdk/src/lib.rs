//! # occopus-sdk: write Occopus plugins in Rust
//!
//! Occopus runs every cloud backend, health checker and config manager as a sandboxed
//! WebAssembly component speaking the `occopus:plugin@0.1.0` WIT interfaces. This crate
//! hides the bindings: implement one trait, invoke one export macro, build for
//! `wasm32-wasip2`, and drop the `.wasm` into a `--plugin-dir`.
//!
//! It owns the guest side of the ABI only: it never talks to the network or the
//! filesystem except through the host imports (`http`, `probe`, `clock`, `process`,
//! `log`), and outside the host those helpers fail (or, for `log` and `clock`, fall back
//! to stderr and the system clock) so plugin logic can be unit-tested natively.
//!
//! ## A complete resource handler
//!
//! ```
//! use occopus_sdk::prelude::*;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Section {
//!     #[serde(rename = "type")]
//!     _type: String,
//!     size: u32,
//! }
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl ResourceHandler for Hello {
//!     fn metadata(&self) -> Metadata {
//!         occopus_sdk::metadata!("hello").handles("hello", json!({
//!             "type": "object",
//!             "properties": {"type": {"const": "hello"}, "size": {"type": "integer"}},
//!             "required": ["type", "size"],
//!             "additionalProperties": false
//!         }))
//!     }
//!     fn create(&self, req: &CreateRequest) -> Result<Value> {
//!         let s: Section = req.section()?; // bad field -> InvalidConfig at `/size`
//!         // The node id is the idempotency key: use it as the resource's name or tag.
//!         Ok(json!({"id": req.node.node_id, "size": s.size}))
//!     }
//!     fn state(&self, _inst: &InstanceRef) -> Result<ResourceState> {
//!         Ok(ResourceState::ready())
//!     }
//!     fn addresses(&self, _inst: &InstanceRef) -> Result<Addresses> {
//!         Ok(Addresses::single("127.0.0.1"))
//!     }
//!     fn destroy(&self, _inst: &InstanceRef) -> Result<()> {
//!         Ok(()) // already gone is success too
//!     }
//! }
//!
//! occopus_sdk::export_resource_handler!(Hello);
//! ```
//!
//! `Cargo.toml` needs `crate-type = ["cdylib", "rlib"]` (`rlib` for native tests), and the
//! build is `cargo build --profile plugin --target wasm32-wasip2 -p <crate>`; the `.wasm`
//! it writes is already a component. `docs/write-a-plugin.md` walks through it.
//!
//! ## The pieces
//!
//! * **Traits**: [`ResourceHandler`], [`HealthChecker`], [`ConfigManager`], exported with
//!   [`export_resource_handler!`], [`export_health_checker!`], [`export_config_manager!`].
//!   The plugin type must implement `Default`; it is built afresh for every call, because
//!   the host may run several instances and discard one between calls. Whatever a later
//!   call needs goes into the instance data `create` returns.
//! * **Requests**: [`CreateRequest`], [`HealthRequest`], [`InfraRequest`],
//!   [`NodeRequest`] carry the rendered section as a JSON [`Value`]; [`InstanceRef`]
//!   (for the often-polled `state` and the other calls on an existing instance) keeps the
//!   section and the instance data as [`Json`] text, parsed only when read.
//!   `req.section::<T>()` deserialises it and reports a bad field as
//!   [`PluginError::InvalidConfig`] with its JSON pointer (`/ports/1`, and for a missing
//!   field the field's own pointer). [`Credentials`] wraps the auth-data entry: its
//!   `Debug` is `Credentials(<redacted>)` and its parse errors never quote values.
//! * **Errors**: [`PluginError`] says whether a retry helps.
//!   `PluginError::transient(..)`/`transient_after(.., ms)` are retried with backoff;
//!   `invalid(path, msg)`, `denied`, `not_found`, `conflict`, `internal` are permanent;
//!   [`PluginError::from_http_status`] maps 429/5xx to transient (with `Retry-After`),
//!   404 to not-found, 409 to conflict, 400/422 to invalid-config.
//! * **Metadata**: [`metadata!`]`("name")` fills version and description from
//!   `Cargo.toml`; chain [`Metadata::handles`] (type name + JSON Schema, written with
//!   [`json!`]) and [`Metadata::capability`] (`ping`, `process`, `http:https://*.example.com`,
//!   `unix:/var/run/docker.sock`, `tcp:host:port`). Endpoints written in the plugin's own
//!   section and auth entry need no capability.
//! * **[`http`]**: `Http::get(url).header(k, v).bearer(t).json(&body).timeout_ms(ms)
//!   .unix_socket(path).send()?` then `.error_for_status()?.json::<T>()?`. Redirects are
//!   not followed by the host.
//!
//!   ```no_run
//!   # use occopus_sdk::http::Http;
//!   # fn f() -> occopus_sdk::Result<serde_json::Value> {
//!   let containers = Http::get("http://localhost/v1.41/containers/json?all=1")
//!       .unix_socket("/var/run/docker.sock")
//!       .send()?
//!       .error_for_status()?
//!       .json()?;
//!   # Ok(containers) }
//!   ```
//! * **[`log`]**: `log::info("created")`, `log::warn(..)`, or `log::log(Level, msg,
//!   &[("key", "value")])`. Never log credentials.
//! * **[`clock`]**: `clock::now_ms()`, `clock::sleep_ms(ms)`; the host suspends the plugin
//!   without blocking a thread. Never busy-wait.
//! * **[`probe`]**: `probe::ping(host, timeout_ms)` (needs `ping`),
//!   `probe::tcp_connect(host, port, timeout_ms)`.
//! * **[`process`]** (the `local` backend; needs `process`):
//!   `process::spawn(&Command::new(["sh", "-c", "…"]).env("K", "V"))` returns a
//!   serialisable [`process::ProcessHandle`]; `status`, `kill`, `run`, `write_file`,
//!   `read_tail`, `loopback_address`, `release`.
//! * **Types**: [`NodeContext`], [`Addresses`], [`NodeStatus`], [`ResourceState`],
//!   [`HealthReport`] (`HealthReport::from_checks(vec![CheckOutcome::pass(..), ..])`).
//!
//! ## Testing
//!
//! Keep the logic in plain modules that take the section and the request, and put network
//! access behind a trait of your own; then `cargo test -p <crate>` runs natively. To run
//! the built component against a mock host, use the `occopus-sdk-harness` crate.
//!
//! ## How the bindings are shared
//!
//! The host imports are generated once; each plugin world reuses them through
//! `wit_bindgen`'s `with:`. Each world's export macro carries the component-type section
//! that names the world's exports, so only the kind a plugin exports ends up in its
//! component. Keep the dependency named `occopus-sdk` (not renamed): the generated code
//! refers to `::occopus_sdk`.

extern crate self as occopus_sdk;

#[doc(hidden)]
pub mod bindings;
pub mod clock;
mod convert;
pub mod error;
mod export;
pub mod http;
mod kinds;
pub mod log;
pub mod metadata;
pub mod probe;
pub mod process;
pub mod request;
pub mod types;

pub use error::{PluginError, Result};
pub use kinds::{ConfigManager, HealthChecker, ResourceHandler};
pub use metadata::{Metadata, TypeInfo};
pub use request::{
    CreateRequest, Credentials, HealthRequest, InfraRequest, InstanceRef, Json, NodeRequest,
    parse_section,
};
pub use serde_json::{self, Value, json};
pub use types::{
    Addresses, CheckOutcome, HealthReport, HealthStatus, NodeContext, NodeStatus, ResourceState,
};

/// Everything a plugin usually needs: `use occopus_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::http::Http;
    pub use crate::{
        Addresses, CheckOutcome, ConfigManager, CreateRequest, Credentials, HealthChecker,
        HealthReport, HealthRequest, HealthStatus, InfraRequest, InstanceRef, Metadata,
        NodeContext, NodeRequest, NodeStatus, PluginError, ResourceHandler, ResourceState, Result,
        Value, json,
    };
}

/// Implementation details of the export macros. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::export::{ConfigManagerExport, HealthCheckerExport, ResourceHandlerExport};
    pub use wit_bindgen;
}
