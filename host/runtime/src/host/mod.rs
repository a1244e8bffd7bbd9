//! Host imports (`occopus:plugin/{log,http,probe,clock,process}`) and the services behind
//! them.
//!
//! Owns: the `Host` trait impls on the store data (one file per interface), which check
//! the call's policy and bounds, then delegate the effect to a [`HostServices`]; and
//! [`RealHost`], the production services (reqwest + hyper, tokio, local processes). A
//! test harness substitutes its own [`HostServices`] (scripted HTTP, fake processes, a
//! fixed clock) and keeps every policy check.
//!
//! Must not: let a policy decision depend on the services (they only perform effects),
//! or trap the guest for anything a plugin could handle (those are `plugin-error`s).

pub(crate) mod clock;
pub(crate) mod http;
pub(crate) mod log;
pub(crate) mod probe;
pub(crate) mod process;
mod real;

pub use real::RealHost;

use async_trait::async_trait;
use occopus_model::plugin::PluginError;
use std::time::Duration;

/// One outbound HTTP request, after the policy check.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub url: url::Url,
    /// Headers without hop-by-hop ones (`host`, `connection`, `content-length`, ...).
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Already capped by the call's remaining budget.
    pub timeout: Duration,
    /// Speak HTTP over this unix socket instead of TCP.
    pub unix_socket: Option<String>,
    /// Largest response body to accept.
    pub max_body: usize,
}

/// The answer to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Outcome of a ping or TCP probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// Which node instance a process call is about (ids already checked to be safe path
/// components).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScope {
    pub infra_id: String,
    pub node_id: String,
}

/// A process to start. Paths are relative to the node directory and already checked
/// lexically (no absolute paths, no `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub log_file: String,
}

/// A started process: pid plus kernel start time, so a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessHandle {
    pub pid: u32,
    pub start_time: u64,
}

/// What became of a spawned process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessStatus {
    Running,
    Exited(i32),
    Signalled(i32),
    Gone,
}

/// The effects behind the host imports. [`RealHost`] is the production implementation;
/// test harnesses provide scripted ones. Every method is called only after the runtime
/// has checked the plugin's grants and the call's budget.
#[async_trait]
pub trait HostServices: Send + Sync + 'static {
    /// Send an HTTP request (TCP/TLS or over `unix_socket`). Connection failures are
    /// `Transient`, running out of `timeout` is `Timeout`.
    async fn http(&self, plugin: &str, req: HttpRequest) -> Result<HttpResponse, PluginError>;
    /// One ICMP echo.
    async fn ping(&self, host: &str, timeout: Duration) -> Result<ProbeResult, PluginError>;
    /// Connect and close.
    async fn tcp_connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<ProbeResult, PluginError>;
    /// Wall-clock time, Unix milliseconds.
    fn now_unix_ms(&self) -> u64;
    /// Suspend the calling plugin.
    async fn sleep(&self, d: Duration);
    /// Absolute path of the node directory (created if missing).
    async fn workdir(&self, node: &NodeScope) -> Result<String, PluginError>;
    async fn write_file(
        &self,
        node: &NodeScope,
        path: &str,
        contents: &[u8],
        mode: Option<u32>,
    ) -> Result<(), PluginError>;
    async fn read_tail(
        &self,
        node: &NodeScope,
        path: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, PluginError>;
    async fn spawn(
        &self,
        node: &NodeScope,
        req: &SpawnRequest,
    ) -> Result<ProcessHandle, PluginError>;
    /// Run to completion within `timeout`; the exit code.
    async fn run(
        &self,
        node: &NodeScope,
        req: &SpawnRequest,
        timeout: Duration,
    ) -> Result<i32, PluginError>;
    async fn status(
        &self,
        node: &NodeScope,
        p: ProcessHandle,
    ) -> Result<ProcessStatus, PluginError>;
    async fn kill(
        &self,
        node: &NodeScope,
        p: ProcessHandle,
        grace: Duration,
    ) -> Result<(), PluginError>;
    async fn loopback_address(&self, node: &NodeScope) -> Result<String, PluginError>;
    async fn release(&self, node: &NodeScope, keep: bool) -> Result<(), PluginError>;
}
