//! The mock host: scripted HTTP, fake processes and files, a fixed clock.
//!
//! Must not: touch the network or start processes.

use async_trait::async_trait;
use occopus_model::plugin::PluginError;
use occopus_runtime::host::{
    HostServices, HttpRequest, HttpResponse, NodeScope, ProbeResult, ProcessHandle, ProcessStatus,
    SpawnRequest,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// An HTTP request the plugin sent (after the runtime's policy check passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The unix socket it went to, if any.
    pub unix_socket: Option<String>,
}

impl RecordedRequest {
    /// The body as text (lossy), empty when there is none.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    /// Exact URL, or a prefix when it ends with `*`.
    url: String,
    answer: Result<HttpResponse, PluginError>,
}

impl Route {
    fn matches(&self, method: &str, url: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
            && match self.url.strip_suffix('*') {
                Some(prefix) => url.starts_with(prefix),
                None => self.url == url,
            }
    }
}

#[derive(Debug, Default)]
struct Fake {
    routes: Vec<Route>,
    requests: Vec<RecordedRequest>,
    slept: Vec<Duration>,
    files: BTreeMap<(String, String), Vec<u8>>,
    spawned: Vec<SpawnRequest>,
    status: BTreeMap<u32, ProcessStatus>,
    run_exit_code: i32,
    loopback: BTreeMap<String, String>,
    probes: BTreeMap<String, bool>,
}

/// Scripted [`HostServices`]. Clone-free: share it through the [`crate::Harness`].
#[derive(Debug)]
pub struct MockHost {
    now: AtomicU64,
    fake: Mutex<Fake>,
}

fn node_key(n: &NodeScope) -> String {
    format!("{}/{}", n.infra_id, n.node_id)
}

impl MockHost {
    /// A mock whose clock reads `now_unix_ms`.
    pub fn new(now_unix_ms: u64) -> Self {
        Self {
            now: AtomicU64::new(now_unix_ms),
            fake: Mutex::new(Fake::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Fake> {
        self.fake.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer `method url` (a URL ending in `*` matches by prefix) with `status` and
    /// `body`. The most recently scripted matching answer wins, for every matching request.
    pub fn respond(&self, method: &str, url: &str, status: u16, body: impl Into<Vec<u8>>) {
        self.respond_with(
            method,
            url,
            HttpResponse {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.into(),
            },
        );
    }

    /// Answer with a full response.
    pub fn respond_with(&self, method: &str, url: &str, response: HttpResponse) {
        self.lock().routes.push(Route {
            method: method.into(),
            url: url.into(),
            answer: Ok(response),
        });
    }

    /// Fail matching requests with `error` (e.g. [`PluginError::transient`] for a
    /// connection failure).
    pub fn fail(&self, method: &str, url: &str, error: PluginError) {
        self.lock().routes.push(Route {
            method: method.into(),
            url: url.into(),
            answer: Err(error),
        });
    }

    /// Every HTTP request sent so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Set the clock.
    pub fn set_time(&self, unix_ms: u64) {
        self.now.store(unix_ms, Ordering::SeqCst);
    }

    /// Every `clock.sleep` so far (each returned at once and advanced the clock).
    pub fn slept(&self) -> Vec<Duration> {
        self.lock().slept.clone()
    }

    /// Files written by `write-file` for the harness node, by relative path.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let key = node_key(&harness_node());
        self.lock()
            .files
            .iter()
            .filter(|((n, _), _)| *n == key)
            .map(|((_, p), v)| (p.clone(), v.clone()))
            .collect()
    }

    /// Every `spawn` request so far.
    pub fn spawned(&self) -> Vec<SpawnRequest> {
        self.lock().spawned.clone()
    }

    /// What `status` reports for `pid` from now on (spawned processes start `Running`).
    pub fn set_status(&self, pid: u32, status: ProcessStatus) {
        self.lock().status.insert(pid, status);
    }

    /// The exit code `run` reports (default 0).
    pub fn set_run_exit_code(&self, code: i32) {
        self.lock().run_exit_code = code;
    }

    /// Whether probes (`ping`, `tcp-connect`) of `host` succeed (default: they do).
    pub fn set_reachable(&self, host: &str, reachable: bool) {
        self.lock().probes.insert(host.to_string(), reachable);
    }

    fn probe(&self, host: &str) -> ProbeResult {
        let ok = self.lock().probes.get(host).copied().unwrap_or(true);
        ProbeResult {
            ok,
            latency_ms: 1,
            error: (!ok).then(|| "unreachable (scripted)".to_string()),
        }
    }
}

fn harness_node() -> NodeScope {
    let n = crate::Harness::node();
    NodeScope {
        infra_id: n.infra_id.to_string(),
        node_id: n.node_id.to_string(),
    }
}

#[async_trait]
impl HostServices for MockHost {
    async fn http(&self, _plugin: &str, req: HttpRequest) -> Result<HttpResponse, PluginError> {
        let url = req.url.to_string();
        let mut f = self.lock();
        f.requests.push(RecordedRequest {
            method: req.method.clone(),
            url: url.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            unix_socket: req.unix_socket.clone(),
        });
        match f.routes.iter().rev().find(|r| r.matches(&req.method, &url)) {
            Some(r) => r.answer.clone(),
            None => Err(PluginError::Internal(format!(
                "no scripted answer for {} {url} (script one with MockHost::respond)",
                req.method
            ))),
        }
    }

    async fn ping(&self, host: &str, _timeout: Duration) -> Result<ProbeResult, PluginError> {
        Ok(self.probe(host))
    }

    async fn tcp_connect(
        &self,
        host: &str,
        _port: u16,
        _timeout: Duration,
    ) -> Result<ProbeResult, PluginError> {
        Ok(self.probe(host))
    }

    fn now_unix_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    async fn sleep(&self, d: Duration) {
        self.lock().slept.push(d);
        self.now.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    async fn workdir(&self, node: &NodeScope) -> Result<String, PluginError> {
        Ok(format!("/harness/{}/nodes/{}", node.infra_id, node.node_id))
    }

    async fn write_file(
        &self,
        node: &NodeScope,
        path: &str,
        contents: &[u8],
        _mode: Option<u32>,
    ) -> Result<(), PluginError> {
        self.lock()
            .files
            .insert((node_key(node), path.to_string()), contents.to_vec());
        Ok(())
    }

    async fn read_tail(
        &self,
        node: &NodeScope,
        path: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, PluginError> {
        match self.lock().files.get(&(node_key(node), path.to_string())) {
            Some(v) => {
                let from = v
                    .len()
                    .saturating_sub(usize::try_from(max_bytes).unwrap_or(usize::MAX));
                Ok(v[from..].to_vec())
            }
            None => Err(PluginError::NotFound(format!(
                "`{path}` does not exist in the node directory"
            ))),
        }
    }

    async fn spawn(
        &self,
        _node: &NodeScope,
        req: &SpawnRequest,
    ) -> Result<ProcessHandle, PluginError> {
        let mut f = self.lock();
        f.spawned.push(req.clone());
        let pid = 1000 + f.spawned.len() as u32;
        f.status.insert(pid, ProcessStatus::Running);
        Ok(ProcessHandle { pid, start_time: 1 })
    }

    async fn run(
        &self,
        _node: &NodeScope,
        req: &SpawnRequest,
        _timeout: Duration,
    ) -> Result<i32, PluginError> {
        let mut f = self.lock();
        f.spawned.push(req.clone());
        Ok(f.run_exit_code)
    }

    async fn status(
        &self,
        _node: &NodeScope,
        p: ProcessHandle,
    ) -> Result<ProcessStatus, PluginError> {
        Ok(self
            .lock()
            .status
            .get(&p.pid)
            .copied()
            .unwrap_or(ProcessStatus::Gone))
    }

    async fn kill(
        &self,
        _node: &NodeScope,
        p: ProcessHandle,
        _grace: Duration,
    ) -> Result<(), PluginError> {
        let mut f = self.lock();
        if f.status.get(&p.pid) == Some(&ProcessStatus::Running) {
            f.status.insert(p.pid, ProcessStatus::Signalled(15));
        }
        Ok(())
    }

    async fn loopback_address(&self, node: &NodeScope) -> Result<String, PluginError> {
        let key = node_key(node);
        let mut f = self.lock();
        if let Some((a, _)) = f.loopback.iter().find(|(_, o)| **o == key) {
            return Ok(a.clone());
        }
        let a = format!("127.0.0.{}", f.loopback.len() + 2);
        f.loopback.insert(a.clone(), key);
        Ok(a)
    }

    async fn release(&self, node: &NodeScope, keep: bool) -> Result<(), PluginError> {
        let key = node_key(node);
        let mut f = self.lock();
        f.loopback.retain(|_, o| *o != key);
        if !keep {
            f.files.retain(|(n, _), _| *n != key);
        }
        Ok(())
    }
}
