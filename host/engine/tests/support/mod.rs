//! A reusable fake plugin host for engine tests and benchmarks: an in-process "cloud"
//! whose resources are keyed by node id (so a repeated create adopts, like real plugins
//! must), a config manager and a health checker. Every call is recorded with a timestamp;
//! latencies and failures are configured per node name; a call can be made to hang forever
//! (what a killed process looks like from the engine's side).

#![allow(dead_code)]

use async_trait::async_trait;
use occopus_engine::{
    Backoff, BuildError, BuildOptions, BuildReport, CredentialSource, DestroyOptions,
    DestroyReport, Engine, EngineError, EngineOptions, NoCredentials, RetryPolicy,
};
use occopus_model::InfraId;
use occopus_model::event::Event;
use occopus_model::plugin::*;
use occopus_model::{
    Addresses, Contextualisation, Edge, HealthCheckSpec, NodeImpl, NodeName, NodeSpec, NodeStatus,
    ResolvedInfra, Scaling, Secret,
};
use occopus_state::{FileStore, FileStoreOptions};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A string that must never show up in state or events.
pub const SENTINEL: &str = "SENTINEL-SECRET-7f3a";

/// One recorded plugin call.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Duration,
    pub op: &'static str,
    pub node: String,
    pub node_id: String,
}

/// How a node's plugins behave.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub create_latency: Duration,
    /// `state()` says `pending` this many times before `ready`.
    pub pending_polls: u32,
    /// The resource turns `failed` with this message.
    pub resource_fails: Option<String>,
    /// With `resource_fails`: only after this many `state()` polls (the service starts,
    /// then dies).
    pub fails_after_polls: u32,
    /// The `poll_after_ms` hint `state()` gives.
    pub poll_after_ms: Option<u64>,
    /// Errors `create` returns before it succeeds (popped one per call).
    pub create_errors: Vec<PluginError>,
    /// Health: `None` ready; `Some(n)` pending n times then ready; `u32::MAX` never.
    pub health_pending: Option<u32>,
    pub health_failed: bool,
    pub destroy_latency: Duration,
    pub destroy_error: Option<PluginError>,
    /// `state()` panics (an engine-side bug seen from the instance's task).
    pub state_panics: bool,
    /// A staged `create` answers this at once, before its turn.
    pub staged_error: Option<PluginError>,
    /// `find` answers this.
    pub find_error: Option<PluginError>,
}

/// A resource in the fake cloud.
#[derive(Debug, Clone)]
pub struct Resource {
    pub node: String,
    pub alive: bool,
    pub polls: u32,
    pub health_polls: u32,
}

/// The fake cloud: resources, calls and counters. Shared between hosts so a "restarted
/// process" sees the same cloud.
#[derive(Default)]
pub struct Cloud {
    pub start: Mutex<Option<Instant>>,
    pub resources: Mutex<HashMap<String, Resource>>,
    pub calls: Mutex<Vec<Call>>,
    pub record_calls: AtomicBool,
    pub behaviour: Mutex<HashMap<String, Behaviour>>,
    /// Resources made (not adopted).
    pub made: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub in_flight_drops: AtomicUsize,
    pub max_in_flight_drops: AtomicUsize,
    pub calls_total: AtomicU64,
    /// Hang forever at this call number (1-based), after doing its effect.
    pub hang_at: AtomicU64,
    pub hung: AtomicBool,
    pub creds_seen: AtomicUsize,
    /// Staged creates dropped before their turn.
    pub staged_dropped: AtomicUsize,
    /// Wakes staged creates waiting for their turn; each notes `poked` if it is polled
    /// (what a plugin host does when a call in turn asks for its instance back).
    pub poke: tokio::sync::Notify,
}

impl Cloud {
    pub fn new() -> Arc<Self> {
        let c = Self::default();
        *c.start.lock().unwrap() = Some(Instant::now());
        c.record_calls.store(true, Ordering::Relaxed);
        Arc::new(c)
    }

    pub fn set(&self, node: &str, b: Behaviour) {
        self.behaviour.lock().unwrap().insert(node.into(), b);
    }

    fn behaviour(&self, node: &str) -> Behaviour {
        self.behaviour
            .lock()
            .unwrap()
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls of one kind for one node.
    pub fn calls_of(&self, op: &str, node: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.op == op && c.node == node)
            .collect()
    }

    pub fn alive(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .resources
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.alive)
            .map(|(id, r)| (r.node.clone(), id.clone()))
            .collect();
        v.sort();
        v
    }

    /// Record a call; hang forever if it is the configured one (after `effect`).
    async fn call(&self, op: &'static str, node: &NodeContext, effect: impl FnOnce()) {
        let n = self.calls_total.fetch_add(1, Ordering::SeqCst) + 1;
        if self.record_calls.load(Ordering::Relaxed) {
            self.note(op, node);
        }
        effect();
        if self.hang_at.load(Ordering::SeqCst) == n {
            self.hung.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    }

    /// Record a step that is not a plugin call with an effect (a staged create's work
    /// before its turn): not counted for `hang_at`.
    fn note(&self, op: &'static str, node: &NodeContext) {
        let at = self
            .start
            .lock()
            .unwrap()
            .map(|s| s.elapsed())
            .unwrap_or_default();
        self.calls.lock().unwrap().push(Call {
            at,
            op,
            node: node.node_name.to_string(),
            node_id: node.node_id.to_string(),
        });
    }

    fn saw(&self, c: &Option<Secret<Value>>) {
        if c.as_ref()
            .is_some_and(|s| s.expose().to_string().contains(SENTINEL))
        {
            self.creds_seen.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);
impl<'a> InFlight<'a> {
    fn enter(cur: &'a AtomicUsize, max: &AtomicUsize) -> Self {
        let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        Self(cur)
    }
}
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn addresses_for(id: &str) -> Addresses {
    let h = id
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    let ip = format!("10.{}.{}.{}", (h >> 16) & 255, (h >> 8) & 255, h & 255);
    Addresses {
        primary: Some(ip.clone()),
        private: Some(format!("192.168.{}.{}", (h >> 8) & 255, h & 255)),
        all: vec![ip],
    }
}

pub struct FakeResources(pub Arc<Cloud>);

#[async_trait]
impl ResourceHandler for FakeResources {
    async fn validate(&self, _: &str, _: &Value) -> Result<(), PluginError> {
        Ok(())
    }
    async fn create(&self, req: &CreateRequest) -> Result<Value, PluginError> {
        let c = &self.0;
        c.saw(&req.credentials);
        let b = c.behaviour(req.node.node_name.as_str());
        let _g = InFlight::enter(&c.in_flight, &c.max_in_flight);
        if !b.create_latency.is_zero() {
            tokio::time::sleep(b.create_latency).await;
        }
        let injected = {
            let mut all = c.behaviour.lock().unwrap();
            all.get_mut(req.node.node_name.as_str())
                .filter(|b| !b.create_errors.is_empty())
                .map(|b| b.create_errors.remove(0))
        };
        if let Some(e) = injected {
            c.call("create", &req.node, || {}).await;
            return Err(e);
        }
        let id = req.node.node_id.to_string();
        c.call("create", &req.node, || {
            let mut res = c.resources.lock().unwrap();
            let r = res.entry(id.clone()).or_insert_with(|| {
                c.made.fetch_add(1, Ordering::SeqCst);
                Resource {
                    node: req.node.node_name.to_string(),
                    alive: true,
                    polls: 0,
                    health_polls: 0,
                }
            });
            r.alive = true;
        })
        .await;
        Ok(json!({"id": id}))
    }
    /// Notes `stage` (the work a plugin may do before its turn), then waits for the turn
    /// and creates; a drop before the turn is counted in `staged_dropped`.
    async fn create_staged(
        &self,
        req: &CreateRequest,
        turn: &Release,
    ) -> Result<Value, PluginError> {
        struct Parked<'a>(&'a AtomicUsize, bool);
        impl Drop for Parked<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let c = &self.0;
        c.note("stage", &req.node);
        let mut parked = Parked(&c.staged_dropped, false);
        if let Some(e) = c.behaviour(req.node.node_name.as_str()).staged_error {
            parked.1 = true;
            return Err(e);
        }
        loop {
            let poked = c.poke.notified();
            tokio::select! {
                biased;
                _ = turn.wait() => break,
                _ = poked => c.note("poked", &req.node),
            }
        }
        parked.1 = true;
        self.create(req).await
    }
    async fn find(&self, req: &CreateRequest) -> Result<Option<Value>, PluginError> {
        let c = &self.0;
        c.call("find", &req.node, || {}).await;
        if let Some(e) = c.behaviour(req.node.node_name.as_str()).find_error {
            return Err(e);
        }
        let id = req.node.node_id.to_string();
        let alive = c
            .resources
            .lock()
            .unwrap()
            .get(&id)
            .is_some_and(|r| r.alive);
        Ok(alive.then(|| json!({"id": id})))
    }
    async fn state(&self, inst: &InstanceRef) -> Result<ResourceState, PluginError> {
        let c = &self.0;
        c.call("state", &inst.node, || {}).await;
        let b = c.behaviour(inst.node.node_name.as_str());
        assert!(!b.state_panics, "fake plugin bug in state");
        let mut res = c.resources.lock().unwrap();
        if let Some(m) = b.resource_fails {
            let polls = res
                .get_mut(inst.node.node_id.as_str())
                .map(|r| {
                    r.polls += 1;
                    r.polls
                })
                .unwrap_or(u32::MAX);
            if polls > b.fails_after_polls {
                return Ok(ResourceState {
                    status: NodeStatus::Failed,
                    message: Some(m),
                    poll_after_ms: None,
                });
            }
            return Ok(ResourceState {
                status: NodeStatus::Ready,
                message: None,
                poll_after_ms: None,
            });
        }
        let Some(r) = res.get_mut(inst.node.node_id.as_str()).filter(|r| r.alive) else {
            return Ok(ResourceState {
                status: NodeStatus::Shutdown,
                message: Some("gone".into()),
                poll_after_ms: None,
            });
        };
        r.polls += 1;
        let status = if r.polls > b.pending_polls {
            NodeStatus::Ready
        } else {
            NodeStatus::Pending
        };
        Ok(ResourceState {
            status,
            message: None,
            poll_after_ms: b.poll_after_ms,
        })
    }
    async fn addresses(&self, inst: &InstanceRef) -> Result<Addresses, PluginError> {
        self.0.call("addresses", &inst.node, || {}).await;
        Ok(addresses_for(inst.node.node_id.as_str()))
    }
    async fn destroy(&self, inst: &InstanceRef) -> Result<(), PluginError> {
        let c = &self.0;
        c.saw(&inst.credentials);
        let b = c.behaviour(inst.node.node_name.as_str());
        let _g = InFlight::enter(&c.in_flight_drops, &c.max_in_flight_drops);
        if !b.destroy_latency.is_zero() {
            tokio::time::sleep(b.destroy_latency).await;
        }
        if let Some(e) = b.destroy_error {
            c.call("destroy", &inst.node, || {}).await;
            return Err(e);
        }
        let id = inst.node.node_id.to_string();
        c.call("destroy", &inst.node, || {
            if let Some(r) = c.resources.lock().unwrap().get_mut(&id) {
                r.alive = false;
            }
        })
        .await;
        Ok(())
    }
}

pub struct FakeHealth(pub Arc<Cloud>);

#[async_trait]
impl HealthChecker for FakeHealth {
    async fn validate(&self, _: &str, _: &Value) -> Result<(), PluginError> {
        Ok(())
    }
    async fn check(&self, req: &HealthRequest) -> Result<HealthReport, PluginError> {
        let c = &self.0;
        c.call("health", &req.node, || {}).await;
        let b = c.behaviour(req.node.node_name.as_str());
        let polls = {
            let mut res = c.resources.lock().unwrap();
            let r = res.get_mut(req.node.node_id.as_str());
            r.map(|r| {
                r.health_polls += 1;
                r.health_polls
            })
            .unwrap_or(0)
        };
        let (status, ok) = if b.health_failed {
            (HealthStatus::Failed, false)
        } else {
            match b.health_pending {
                Some(n) if polls <= n => (HealthStatus::Pending, false),
                _ => (HealthStatus::Ready, true),
            }
        };
        Ok(HealthReport {
            status,
            checks: vec![CheckOutcome {
                name: format!(
                    "port 80 on {}",
                    req.addresses.primary.clone().unwrap_or_default()
                ),
                ok,
                detail: if ok {
                    "open".into()
                } else {
                    "connection refused".into()
                },
            }],
        })
    }
}

pub struct FakeCm(pub Arc<Cloud>);

#[async_trait]
impl ConfigManager for FakeCm {
    async fn validate(&self, _: &str, _: &Value) -> Result<(), PluginError> {
        Ok(())
    }
    async fn create_infrastructure(&self, req: &CmInfraRequest) -> Result<(), PluginError> {
        let node = NodeContext {
            infra_id: req.infra_id.clone(),
            infra_name: String::new(),
            node_name: NodeName::new_unchecked("-infra-"),
            node_id: occopus_model::NodeId::new("-"),
            user_id: None,
        };
        self.0.call("cm_create_infra", &node, || {}).await;
        Ok(())
    }
    async fn drop_infrastructure(&self, req: &CmInfraRequest) -> Result<(), PluginError> {
        let node = NodeContext {
            infra_id: req.infra_id.clone(),
            infra_name: String::new(),
            node_name: NodeName::new_unchecked("-infra-"),
            node_id: occopus_model::NodeId::new("-"),
            user_id: None,
        };
        self.0.call("cm_drop_infra", &node, || {}).await;
        Ok(())
    }
    async fn infrastructure_exists(&self, _: &CmInfraRequest) -> Result<bool, PluginError> {
        Ok(true)
    }
    async fn register_node(&self, req: &CmNodeRequest) -> Result<(), PluginError> {
        self.0.call("cm_register", &req.node, || {}).await;
        Ok(())
    }
    async fn drop_node(&self, req: &CmNodeRequest) -> Result<(), PluginError> {
        self.0.call("cm_drop", &req.node, || {}).await;
        Ok(())
    }
    async fn node_state(&self, req: &CmNodeRequest) -> Result<NodeStatus, PluginError> {
        self.0.call("cm_state", &req.node, || {}).await;
        Ok(NodeStatus::Ready)
    }
    async fn node_attribute(
        &self,
        _: &CmNodeRequest,
        _: &str,
    ) -> Result<Option<Value>, PluginError> {
        Ok(None)
    }
    async fn resolve_attributes(&self, req: &CmNodeRequest) -> Result<Value, PluginError> {
        self.0.call("cm_resolve", &req.node, || {}).await;
        Ok(json!({"puppet": {"modules": "m1 m2"}}))
    }
}

/// Routes `fake` (resources), `basic` (health) and `fakecm` (config manager).
pub struct FakeHost {
    pub cloud: Arc<Cloud>,
    /// Every `prepare` hint, in order.
    pub prepared: std::sync::Mutex<Vec<(PluginKind, String, usize)>>,
}

impl FakeHost {
    pub fn new(cloud: Arc<Cloud>) -> Arc<Self> {
        Arc::new(Self {
            cloud,
            prepared: std::sync::Mutex::new(Vec::new()),
        })
    }
}

fn no_plugin(kind: PluginKind, t: &str, known: &str) -> NoPlugin {
    NoPlugin {
        kind,
        type_name: t.into(),
        known: vec![known.into()],
    }
}

impl PluginHost for FakeHost {
    fn resource_handler(&self, t: &str) -> Result<Arc<dyn ResourceHandler>, NoPlugin> {
        if t == "fake" {
            Ok(Arc::new(FakeResources(self.cloud.clone())))
        } else {
            Err(no_plugin(PluginKind::ResourceHandler, t, "fake"))
        }
    }
    fn health_checker(&self, t: &str) -> Result<Arc<dyn HealthChecker>, NoPlugin> {
        if t == "basic" {
            Ok(Arc::new(FakeHealth(self.cloud.clone())))
        } else {
            Err(no_plugin(PluginKind::HealthChecker, t, "basic"))
        }
    }
    fn config_manager(&self, t: &str) -> Result<Arc<dyn ConfigManager>, NoPlugin> {
        if t == "fakecm" {
            Ok(Arc::new(FakeCm(self.cloud.clone())))
        } else {
            Err(no_plugin(PluginKind::ConfigManager, t, "fakecm"))
        }
    }
    fn check_section(
        &self,
        _: PluginKind,
        _: &str,
        _: &Value,
        _: bool,
    ) -> Result<Vec<FieldError>, NoPlugin> {
        Ok(Vec::new())
    }
    fn plugins(&self) -> Vec<PluginInfo> {
        Vec::new()
    }
    fn prepare(&self, kind: PluginKind, type_name: &str, count: usize) {
        self.prepared
            .lock()
            .unwrap()
            .push((kind, type_name.to_string(), count));
    }
}

/// Credentials holding [`SENTINEL`], for every section.
pub struct SentinelCreds;

impl CredentialSource for SentinelCreds {
    fn select(&self, _: &str, _: &Map<String, Value>) -> Result<Option<Secret<Value>>, String> {
        Ok(Some(Secret::new(
            json!({"accesskey": "AK", "secretkey": SENTINEL}),
        )))
    }
}

/// A node with one `fake` implementation, a basic health check on port 80 and a
/// resource section with a template.
pub fn node(name: &str, min: u32, max: u32) -> NodeSpec {
    let mut section = Map::new();
    section.insert("type".into(), json!("basic"));
    section.insert("ping".into(), json!(false));
    section.insert("ports".into(), json!([80]));
    NodeSpec {
        name: NodeName::parse(name).unwrap(),
        type_name: format!("{name}_node"),
        scaling: Scaling { min, max },
        filter: Map::new(),
        variables: json!({"greeting": "hello"}),
        implementations: vec![NodeImpl {
            index: 0,
            resource: serde_json::from_value(json!({
                "type": "fake",
                "endpoint": "http://cloud.example",
                "label": "{{ infra_name }}-{{ name }}-{{ cut(node_id, 0, 8) }}",
            }))
            .unwrap(),
            contextualisation: Contextualisation::Basic {
                attributes: json!({"msg": "{{ variables.greeting }}"}),
            },
            config_management: None,
            health_check: HealthCheckSpec {
                type_name: "basic".into(),
                section,
                timeout_secs: 600,
            },
        }],
    }
}

/// An infrastructure of `nodes` with `edges` as (dependent, dependee).
pub fn infra(nodes: Vec<NodeSpec>, edges: &[(&str, &str)]) -> ResolvedInfra {
    ResolvedInfra {
        name: "test-infra".into(),
        user_id: Some("tester".into()),
        variables: json!({}),
        nodes,
        edges: edges
            .iter()
            .map(|(a, b)| Edge {
                dependent: NodeName::parse(*a).unwrap(),
                dependee: NodeName::parse(*b).unwrap(),
                mappings: Vec::new(),
                implicit: false,
            })
            .collect(),
    }
}

/// Fast polling and retries for tests.
pub fn fast_options() -> EngineOptions {
    EngineOptions {
        health_poll: Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(10),
        },
        retry: RetryPolicy {
            attempts: 4,
            backoff: Backoff {
                first: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
        },
        event_capacity: 1 << 16,
        ..EngineOptions::default()
    }
}

/// A store, a cloud and an engine over them.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: FileStore,
    pub cloud: Arc<Cloud>,
    pub host: Arc<FakeHost>,
    pub engine: Engine,
}

impl Env {
    pub fn new() -> Self {
        Self::with_options(fast_options())
    }

    pub fn with_options(opts: EngineOptions) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let store = FileStore::open_with(
            dir.path(),
            FileStoreOptions {
                sync: false,
                ..FileStoreOptions::default()
            },
        )
        .unwrap();
        let cloud = Cloud::new();
        let host = FakeHost::new(cloud.clone());
        let engine = Engine::new(host.clone(), Arc::new(store.clone()), opts);
        Self {
            dir,
            store,
            cloud,
            host,
            engine,
        }
    }

    /// Build without credentials.
    pub async fn try_build(
        &self,
        desc: &ResolvedInfra,
        opts: BuildOptions,
    ) -> Result<BuildReport, BuildError> {
        self.engine.build(desc, Arc::new(NoCredentials), opts).await
    }

    /// Build a new infrastructure without credentials; it must succeed.
    pub async fn build(&self, desc: &ResolvedInfra) -> BuildReport {
        self.try_build(desc, BuildOptions::default()).await.unwrap()
    }

    /// Destroy without credentials.
    pub async fn destroy(&self, id: &InfraId) -> Result<DestroyReport, EngineError> {
        self.engine
            .destroy(id, Arc::new(NoCredentials), DestroyOptions::default())
            .await
    }

    /// A second engine (a restarted process) over the same directory and cloud.
    pub fn restarted(&self, opts: EngineOptions) -> (FileStore, Engine) {
        let store = FileStore::open_with(
            self.dir.path(),
            FileStoreOptions {
                sync: false,
                ..FileStoreOptions::default()
            },
        )
        .unwrap();
        let engine = Engine::new(
            FakeHost::new(self.cloud.clone()),
            Arc::new(store.clone()),
            opts,
        );
        (store, engine)
    }
}

/// Everything received so far.
pub fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

/// Every file under `dir`, concatenated (for secret greps).
pub fn all_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push_str(&all_text(&p));
            } else if let Ok(b) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    out
}

/// What [`HookedStore`] does with one `append`.
pub enum AppendHook {
    /// Store the records; resolve the ack as the store does.
    Pass,
    /// Store the records; resolve the ack this much later than the store does.
    DelayAck(Duration),
    /// Store nothing; fail the ack with this error.
    Fail(occopus_state::StateError),
}

/// Decides what happens to one `append`.
pub type AppendHookFn = dyn Fn(&[occopus_state::Record]) -> AppendHook + Send + Sync;

/// The file store with a hook on every awaited `append` (to delay or fail a commit), and
/// the times at which delayed acks resolved.
pub struct HookedStore {
    pub inner: FileStore,
    pub hook: Box<AppendHookFn>,
    pub delayed_acks: Arc<Mutex<Vec<Instant>>>,
}

impl HookedStore {
    pub fn new(
        inner: FileStore,
        hook: impl Fn(&[occopus_state::Record]) -> AppendHook + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            hook: Box::new(hook),
            delayed_acks: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

/// Whether `records` hold the `creating` intent of an instance of `node`.
pub fn has_intent_of(records: &[occopus_state::Record], node: &str) -> bool {
    records.iter().any(|r| {
        matches!(r, occopus_state::Record::Instance(i)
            if i.node_name.as_str() == node && i.phase == occopus_model::InstancePhase::Creating)
    })
}

#[async_trait]
impl occopus_state::StateStore for HookedStore {
    async fn create_infra(
        &self,
        meta: &occopus_state::InfraMeta,
    ) -> Result<(), occopus_state::StateError> {
        self.inner.create_infra(meta).await
    }
    async fn put_meta(
        &self,
        meta: &occopus_state::InfraMeta,
    ) -> Result<(), occopus_state::StateError> {
        self.inner.put_meta(meta).await
    }
    async fn load(
        &self,
        id: &InfraId,
    ) -> Result<Option<occopus_state::InfraState>, occopus_state::StateError> {
        self.inner.load(id).await
    }
    fn append(&self, id: &InfraId, records: &[occopus_state::Record]) -> occopus_state::Ack {
        match (self.hook)(records) {
            AppendHook::Pass => self.inner.append(id, records),
            AppendHook::Fail(e) => occopus_state::Ack::ready(Err(e)),
            AppendHook::DelayAck(d) => {
                let stored = self.inner.append(id, records);
                let (tx, ack) = occopus_state::Ack::channel();
                let times = self.delayed_acks.clone();
                tokio::spawn(async move {
                    let r = stored.await;
                    tokio::time::sleep(d).await;
                    times.lock().unwrap().push(Instant::now());
                    let _ = tx.send(r);
                });
                ack
            }
        }
    }
    fn append_unawaited(&self, id: &InfraId, records: &[occopus_state::Record]) {
        self.inner.append_unawaited(id, records);
    }
    async fn list(&self) -> Result<Vec<occopus_state::InfraSummary>, occopus_state::StateError> {
        self.inner.list().await
    }
    async fn remove(&self, id: &InfraId) -> Result<bool, occopus_state::StateError> {
        self.inner.remove(id).await
    }
    async fn lock(
        &self,
        id: &InfraId,
        holder: &occopus_state::LockHolder,
        wait: Duration,
    ) -> Result<occopus_state::InfraLock, occopus_state::StateError> {
        self.inner.lock(id, holder, wait).await
    }
    async fn put_node_defs(
        &self,
        node_type: &str,
        defs: &Value,
    ) -> Result<(), occopus_state::StateError> {
        self.inner.put_node_defs(node_type, defs).await
    }
    async fn get_node_defs(
        &self,
        node_type: &str,
    ) -> Result<Option<Value>, occopus_state::StateError> {
        self.inner.get_node_defs(node_type).await
    }
    async fn list_node_defs(&self) -> Result<Vec<String>, occopus_state::StateError> {
        self.inner.list_node_defs().await
    }
}
