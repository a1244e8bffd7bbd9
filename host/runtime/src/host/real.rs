//! The production [`HostServices`]: reqwest/hyper, tokio timers and sockets, real ICMP,
//! and [`ProcessManager`] for local processes.

use super::process::ProcessManager;
use super::{
    HostServices, HttpRequest, HttpResponse, NodeScope, ProbeResult, ProcessHandle, ProcessStatus,
    SpawnRequest,
};
use async_trait::async_trait;
use occopus_model::plugin::PluginError;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Real effects. One per runtime; the HTTP client (connection pool, TLS) is shared by
/// every plugin.
#[derive(Debug, Clone)]
pub struct RealHost {
    client: reqwest::Client,
    processes: ProcessManager,
}

impl RealHost {
    /// `work_root` roots the node directories of the `process` capability.
    pub fn new(work_root: Option<PathBuf>) -> Result<Self, String> {
        Ok(Self {
            client: super::http::client()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            processes: ProcessManager::new(work_root),
        })
    }

    /// The process manager (for tools that inspect node directories).
    pub fn processes(&self) -> &ProcessManager {
        &self.processes
    }
}

/// Longest plugin sleep timed by the precise timer.
const PRECISE_SLEEP_MAX: Duration = Duration::from_secs(60);

#[async_trait]
impl HostServices for RealHost {
    async fn http(&self, _plugin: &str, req: HttpRequest) -> Result<HttpResponse, PluginError> {
        match req.unix_socket.clone() {
            Some(sock) => super::http::send_unix(req, &sock).await,
            None => super::http::send_tcp(&self.client, req).await,
        }
    }
    async fn ping(&self, host: &str, timeout: Duration) -> Result<ProbeResult, PluginError> {
        super::probe::ping(host, timeout).await
    }
    async fn tcp_connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<ProbeResult, PluginError> {
        Ok(super::probe::tcp_connect(host, port, timeout).await)
    }
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
    async fn sleep(&self, d: Duration) {
        // Precise: a plugin's sleep (the `sim` plugin's simulated latency) can be on a
        // build's critical path, and tokio's timer wakes up to 2 ms late. Longer sleeps
        // use tokio's: there 2 ms do not matter, and the precise timer would keep one
        // cut short by the call's budget queued until its deadline.
        if d <= PRECISE_SLEEP_MAX {
            occopus_timer::sleep(d).await
        } else {
            tokio::time::sleep(d).await
        }
    }
    async fn workdir(&self, node: &NodeScope) -> Result<String, PluginError> {
        Ok(self.processes.node_dir(node)?.display().to_string())
    }
    async fn write_file(
        &self,
        node: &NodeScope,
        path: &str,
        contents: &[u8],
        mode: Option<u32>,
    ) -> Result<(), PluginError> {
        self.processes.write_file(node, path, contents, mode)
    }
    async fn read_tail(
        &self,
        node: &NodeScope,
        path: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, PluginError> {
        self.processes.read_tail(node, path, max_bytes)
    }
    async fn spawn(
        &self,
        node: &NodeScope,
        req: &SpawnRequest,
    ) -> Result<ProcessHandle, PluginError> {
        self.processes.spawn(node, req).await
    }
    async fn run(
        &self,
        node: &NodeScope,
        req: &SpawnRequest,
        timeout: Duration,
    ) -> Result<i32, PluginError> {
        self.processes.run(node, req, timeout).await
    }
    async fn status(
        &self,
        node: &NodeScope,
        p: ProcessHandle,
    ) -> Result<ProcessStatus, PluginError> {
        self.processes.status(node, p)
    }
    async fn kill(
        &self,
        node: &NodeScope,
        p: ProcessHandle,
        grace: Duration,
    ) -> Result<(), PluginError> {
        self.processes.kill(node, p, grace).await
    }
    async fn loopback_address(&self, node: &NodeScope) -> Result<String, PluginError> {
        self.processes.loopback_address(node).await
    }
    async fn release(&self, node: &NodeScope, keep: bool) -> Result<(), PluginError> {
        self.processes.release(node, keep).await
    }
}
