//! The plugin boundary as the engine sees it: three traits mirroring Occopus's plugin
//! contracts (resource handler, health checker, config manager), their request types, the
//! error type with retry semantics, and [`PluginHost`], which routes a section's `type` to
//! the plugin that declared it.
//!
//! `occopus-runtime` implements these with sandboxed WebAssembly components (the ABI in
//! `wit/`); engine tests implement them with in-process fakes. Every call is stateless:
//! it carries the rendered section, the credentials and the instance data it needs.

use crate::ids::{InfraId, NodeId, NodeName};
use crate::instance::Addresses;
use crate::secret::Secret;
use crate::status::NodeStatus;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The plugin ABI version this host speaks (`occopus:plugin@0.1.0`).
pub const ABI_VERSION: &str = "0.1.0";

/// Kinds of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    ResourceHandler,
    HealthChecker,
    ConfigManager,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResourceHandler => "resource-handler",
            Self::HealthChecker => "health-checker",
            Self::ConfigManager => "config-manager",
        }
    }
    /// The description section whose `type` selects a plugin of this kind.
    pub fn section(self) -> &'static str {
        match self {
            Self::ResourceHandler => "resource",
            Self::HealthChecker => "health_check",
            Self::ConfigManager => "config_management",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error returned across the plugin boundary. Variants say whether retrying can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PluginError {
    /// The section (or credentials) was rejected. `path` is a JSON-pointer-like field path
    /// inside the section (`/image_id`, empty for the whole section).
    #[error("invalid configuration{}: {message}", if path.is_empty() { String::new() } else { format!(" at `{path}`") })]
    InvalidConfig { path: String, message: String },
    /// A host capability was refused by policy; the text names the missing grant.
    #[error("denied: {0}")]
    Denied(String),
    /// The object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A conflict or failed precondition.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A transient failure (throttling, 5xx, network); retry with backoff.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// A host call ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A permanent failure inside the plugin or the remote system.
    #[error("{0}")]
    Internal(String),
    /// The plugin itself broke (trap, panic, time budget, memory cap): that one operation
    /// fails; the host and other nodes carry on.
    #[error("plugin `{plugin}` failed during `{operation}`: {cause}")]
    Crashed {
        plugin: String,
        operation: String,
        cause: String,
    },
}

impl PluginError {
    /// Whether the engine should retry the operation (with backoff).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Timeout(_))
    }
    /// Server-suggested delay before a retry.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::Transient { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }
    pub fn transient(msg: impl Into<String>) -> Self {
        Self::Transient {
            message: msg.into(),
            retry_after_ms: None,
        }
    }
    pub fn invalid(path: impl Into<String>, msg: impl Into<String>) -> Self {
        Self::InvalidConfig {
            path: path.into(),
            message: msg.into(),
        }
    }
}

/// Who a call is about: the instance's identity. `node_id` is the idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeContext {
    pub infra_id: InfraId,
    pub infra_name: String,
    pub node_name: NodeName,
    pub node_id: NodeId,
    pub user_id: Option<String>,
}

/// Everything a resource handler needs to create one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateRequest {
    pub node: NodeContext,
    /// The resource `type` (e.g. `ec2`, `docker`, `local`, `sim`).
    pub type_name: String,
    /// The rendered `resource` section.
    pub resource: Value,
    /// Rendered user data (`cloudinit` contextualisation), if any.
    pub context: Option<String>,
    /// Rendered contextualisation attributes: for `docker`, `{"env": [...], "command": ...}`;
    /// for `cloudinit`/`basic`, the rendered `attributes`.
    pub attributes: Value,
    /// Credentials picked from auth data by sub-dictionary matching, if any matched.
    pub credentials: Option<Secret<Value>>,
}

/// An existing instance, for state/addresses/destroy calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceRef {
    pub node: NodeContext,
    pub type_name: String,
    pub resource: Value,
    pub credentials: Option<Secret<Value>>,
    /// What `create` (or `find`) returned.
    pub instance: Value,
}

/// A one-way switch: closed until [`release`](Self::release)d, then open for good. Clones
/// share it. [`wait`](Self::wait) resolves once it is open. The engine hands one to a
/// staged call ([`ResourceHandler::create_staged`]) and releases it when the instance's
/// turn comes.
#[derive(Clone, Default)]
pub struct Release(Arc<Mutex<ReleaseState>>);

#[derive(Default)]
struct ReleaseState {
    open: bool,
    waiters: Vec<Waker>,
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Release")
            .field("released", &self.is_released())
            .finish()
    }
}

impl Release {
    /// A closed switch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Open it and wake everyone waiting. Idempotent.
    pub fn release(&self) {
        let waiters = {
            let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
            st.open = true;
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Open it and wake everyone waiting but the task of `me`, which is about to poll
    /// what waits on it (a wake of one's own task would only poll it once more for
    /// nothing). Idempotent.
    pub fn release_from(&self, me: &Waker) {
        let waiters = {
            let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
            st.open = true;
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            if !w.will_wake(me) {
                w.wake();
            }
        }
    }

    /// Whether it has been released.
    pub fn is_released(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).open
    }

    /// Resolves once released (at once if it already is).
    pub fn wait(&self) -> ReleaseWait {
        ReleaseWait(self.clone())
    }
}

/// The future of [`Release::wait`].
#[derive(Debug)]
pub struct ReleaseWait(Release);

impl Future for ReleaseWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        if st.open {
            return Poll::Ready(());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The resource's own view of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    pub status: NodeStatus,
    /// Why (e.g. the cloud's state reason, an exit code and log tail).
    pub message: Option<String>,
    /// The plugin's hint: ask again after this many milliseconds (instead of the
    /// engine's own backoff). `None`: no opinion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_after_ms: Option<u64>,
}

/// Occopus resource-handler contract (create / drop / state / address / ip / cost), plus
/// `find` so a resumed operation can adopt a resource made before a crash.
#[async_trait]
pub trait ResourceHandler: Send + Sync {
    /// Check a rendered section beyond its JSON Schema (which the host checks first).
    async fn validate(&self, type_name: &str, section: &Value) -> Result<(), PluginError>;
    /// Create the instance, or adopt the one already made for `req.node.node_id`.
    /// Returns plugin-specific instance data (stored and passed back on later calls).
    async fn create(&self, req: &CreateRequest) -> Result<Value, PluginError>;
    /// `create`, started before its turn (while the instance's dependencies are still
    /// being created): the plugin may do the work it can do alone, up to its first effect
    /// on anything outside itself, and nothing beyond that until `turn` is
    /// [released](Release::release). An implementation must keep that promise for every
    /// effect: a request sent, a process started, even a reading of the clock (a request
    /// signed at staging time would be stale at its turn). Dropping the future before the
    /// release must leave nothing behind; the engine drops it when the instance will not
    /// be created after all (a dependency failed, the build stopped).
    ///
    /// The result may be ready before the release (the plugin answered without an
    /// effect, say a validation error); the engine holds it until the turn.
    ///
    /// By default: wait for the release, then [`create`](Self::create).
    async fn create_staged(
        &self,
        req: &CreateRequest,
        turn: &Release,
    ) -> Result<Value, PluginError> {
        turn.wait().await;
        self.create(req).await
    }
    /// Look for an instance made for `req.node.node_id` (tags, names, client tokens)
    /// without creating anything.
    async fn find(&self, req: &CreateRequest) -> Result<Option<Value>, PluginError>;
    async fn state(&self, inst: &InstanceRef) -> Result<ResourceState, PluginError>;
    async fn addresses(&self, inst: &InstanceRef) -> Result<Addresses, PluginError>;
    /// Destroy the instance. Idempotent: an instance that is already gone is success.
    async fn destroy(&self, inst: &InstanceRef) -> Result<(), PluginError>;
    /// Cost so far, where the backend knows it.
    async fn cost(&self, _inst: &InstanceRef) -> Result<Option<f64>, PluginError> {
        Ok(None)
    }
}

/// A health check request: the rendered `health_check` section and where the node is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthRequest {
    pub node: NodeContext,
    pub type_name: String,
    /// Rendered section (`urls`, `mysqldbs` strings already rendered by the host with
    /// `ip`, `node_id`, `variables`).
    pub section: Value,
    pub addresses: Addresses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ready,
    Pending,
    /// Definitely broken (no point in waiting for the timeout).
    Failed,
}

/// One primitive check's outcome, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// e.g. `ping 127.0.0.2`, `port 8080`, `url http://...`.
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub checks: Vec<CheckOutcome>,
}

impl HealthReport {
    /// One line for progress output: the first failing check, or `ok`.
    pub fn summary(&self) -> String {
        match self.checks.iter().find(|c| !c.ok) {
            Some(c) => format!("{}: {}", c.name, c.detail),
            None => "ok".into(),
        }
    }
}

#[async_trait]
pub trait HealthChecker: Send + Sync {
    async fn validate(&self, type_name: &str, section: &Value) -> Result<(), PluginError>;
    async fn check(&self, req: &HealthRequest) -> Result<HealthReport, PluginError>;
}

/// A config-manager call about the whole infrastructure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CmInfraRequest {
    pub infra_id: InfraId,
    pub type_name: String,
    pub section: Value,
    pub credentials: Option<Secret<Value>>,
}

/// A config-manager call about one node instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CmNodeRequest {
    pub node: NodeContext,
    pub type_name: String,
    /// Rendered `config_management` section.
    pub section: Value,
    pub credentials: Option<Secret<Value>>,
    /// Rendered contextualisation attributes.
    pub attributes: Value,
    pub addresses: Addresses,
}

/// Occopus config-manager contract.
#[async_trait]
pub trait ConfigManager: Send + Sync {
    async fn validate(&self, type_name: &str, section: &Value) -> Result<(), PluginError>;
    async fn create_infrastructure(&self, req: &CmInfraRequest) -> Result<(), PluginError>;
    async fn drop_infrastructure(&self, req: &CmInfraRequest) -> Result<(), PluginError>;
    async fn infrastructure_exists(&self, req: &CmInfraRequest) -> Result<bool, PluginError>;
    async fn register_node(&self, req: &CmNodeRequest) -> Result<(), PluginError>;
    async fn drop_node(&self, req: &CmNodeRequest) -> Result<(), PluginError>;
    async fn node_state(&self, req: &CmNodeRequest) -> Result<NodeStatus, PluginError>;
    async fn node_attribute(
        &self,
        req: &CmNodeRequest,
        attribute: &str,
    ) -> Result<Option<Value>, PluginError>;
    /// Extra template data merged into the node's Jinja namespace (e.g. `puppet`).
    async fn resolve_attributes(&self, req: &CmNodeRequest) -> Result<Value, PluginError>;
}

/// A field-level problem found by host-side schema validation of a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer inside the section (`/security_group_ids/0`); empty for the section.
    pub path: String,
    pub message: String,
}

/// What a plugin says about itself (from its `metadata()` export) plus what the host
/// decided about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    /// ABI version of the component (`occopus:plugin@x.y.z`).
    pub abi: String,
    pub kind: PluginKind,
    /// Section `type` names it handles, each with the JSON Schema of its section.
    pub types: Vec<TypeInfo>,
    /// Capabilities the plugin requests.
    pub requested: Vec<String>,
    /// Capabilities granted after operator config.
    pub granted: Vec<String>,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// Where it was loaded from (`builtin` or a path).
    pub source: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeInfo {
    pub name: String,
    /// JSON Schema of the section for this type.
    pub schema: Value,
}

/// Why a plugin could not be found for a section `type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {kind} plugin handles type `{type_name}`{}", did_you_mean(.known, .type_name))]
pub struct NoPlugin {
    pub kind: PluginKind,
    pub type_name: String,
    /// Types that are handled, for the hint.
    pub known: Vec<String>,
}

fn did_you_mean(known: &[String], wanted: &str) -> String {
    if known.is_empty() {
        return " (no plugins of this kind are loaded; check --plugin-dir)".into();
    }
    match crate::suggest::closest(wanted, known.iter().map(String::as_str)) {
        Some(s) => format!("; did you mean `{s}`? (known types: {})", known.join(", ")),
        None => format!(" (known types: {})", known.join(", ")),
    }
}

/// Routes section `type` names to plugins. Implemented by `occopus-runtime` (WebAssembly)
/// and by engine test fakes.
pub trait PluginHost: Send + Sync {
    fn resource_handler(&self, type_name: &str) -> Result<Arc<dyn ResourceHandler>, NoPlugin>;
    fn health_checker(&self, type_name: &str) -> Result<Arc<dyn HealthChecker>, NoPlugin>;
    fn config_manager(&self, type_name: &str) -> Result<Arc<dyn ConfigManager>, NoPlugin>;
    /// Host-side JSON Schema check of a section, before any plugin call. Values that are
    /// unrendered templates (strings containing `{{` or `{%`) are accepted wherever a
    /// scalar is expected when `unrendered` is true. `Err(NoPlugin)` when no plugin handles
    /// the type.
    fn check_section(
        &self,
        kind: PluginKind,
        type_name: &str,
        section: &Value,
        unrendered: bool,
    ) -> Result<Vec<FieldError>, NoPlugin>;
    /// Everything loaded, for `plugins list`.
    fn plugins(&self) -> Vec<PluginInfo>;
    /// A hint: about `count` calls to the plugin of `kind` handling `type_name` are expected
    /// soon (the engine says so for the dependents of a node it has started). A host may
    /// prepare for them in the background (instantiate plugin instances while the
    /// dependencies are still being created); it must not block. By default, nothing.
    fn prepare(&self, kind: PluginKind, type_name: &str, count: usize) {
        let _ = (kind, type_name, count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut ReleaseWait, waker: &Waker) -> Poll<()> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn release_wakes_every_waiter_once_and_stays_open() {
        let turn = Release::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let (mut a, mut b) = (turn.wait(), turn.clone().wait());
        assert_eq!(poll(&mut a, &waker), Poll::Pending);
        // Polled again with the same waker: still one registration.
        assert_eq!(poll(&mut a, &waker), Poll::Pending);
        let other = Arc::new(Count(AtomicUsize::new(0)));
        assert_eq!(poll(&mut b, &Waker::from(other.clone())), Poll::Pending);
        assert!(!turn.is_released());
        turn.release();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(other.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut a, &waker), Poll::Ready(()));
        assert_eq!(poll(&mut b, &waker), Poll::Ready(()));
        // Open for good: a new wait is ready at once, a second release wakes nobody.
        turn.release();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut turn.wait(), &waker), Poll::Ready(()));
        assert!(turn.is_released());
    }

    #[test]
    fn release_from_wakes_everyone_but_the_releaser() {
        let turn = Release::new();
        let (me, other) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (me_w, other_w) = (Waker::from(me.clone()), Waker::from(other.clone()));
        let (mut a, mut b) = (turn.wait(), turn.wait());
        assert_eq!(poll(&mut a, &me_w), Poll::Pending);
        assert_eq!(poll(&mut b, &other_w), Poll::Pending);
        turn.release_from(&me_w);
        assert_eq!(me.0.load(Ordering::SeqCst), 0);
        assert_eq!(other.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut a, &me_w), Poll::Ready(()));
    }
}
