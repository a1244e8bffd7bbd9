//! The Occopus engine: plans, builds, destroys and inspects infrastructures.
//!
//! Owns: turning a `ResolvedInfra` plus the recorded state into a [`Plan`], executing it
//! by calling plugins through the `occopus_model::plugin` traits, persisting every step
//! in an `occopus_state::StateStore`, and emitting an `occopus_model::Event` per step.
//!
//! Must not: parse descriptions or auth data (the facade passes a `ResolvedInfra` and a
//! [`CredentialSource`]), know about WebAssembly (plugins are reached only through
//! [`PluginHost`]), or print anything (callers subscribe to events).
//!
//! # Semantics
//!
//! **Scheduling is per edge.** A node's instances start as soon as every node it depends
//! on has all its instances ready, not when a whole topological level is done. The
//! instances of one node run concurrently. At most [`EngineOptions::parallelism`]
//! instances are in flight (from intent until ready) over the whole infrastructure. The
//! scheduler reacts to completions in O(nodes + edges); nothing polls in a loop except the
//! waits for one instance, with backoff (fast first poll, doubling, capped).
//!
//! **One instance** ([`instance`](crate::instance) module): the implementation is picked
//! by a hash of the node id (stable across resumes) and recorded; sections are rendered
//! just before the create, in Occopus's order, with `getip` seeing every instance recorded
//! so far; then `register_node`, `create` (node id = idempotency key), `created`, wait for
//! the resource, the config manager and the health checks (skipped when the section checks
//! nothing; the health `timeout` counts from the first failing check), `ready`. The
//! creation deadline bounds it all. Transient plugin errors are retried with backoff;
//! others fail the instance.
//!
//! **Failure.** The build starts nothing new; nodes downstream of the failure are reported
//! once each (`NodeSkipped`); in-flight instances finish; then everything this build
//! created is dropped in reverse dependency order, unless `keep_on_failure`. A failed
//! first build leaves no state behind. The [`BuildError`] says what failed, why, and what
//! was done.
//!
//! **Crash safety.** Intents are durable before the plugin calls they protect: a build
//! commits the `creating` intent of every planned instance (and any config-manager
//! environment) in one group commit before its first create; a drop pass commits all its
//! `dropping` intents before its first destroy. Outcomes (`created`, `ready`, `dropped`)
//! are written after the calls without waiting; a lost outcome is re-established by the
//! resume. A `build` on an infrastructure with unfinished records resumes it: `creating`
//! and `created` instances are created again *with the same node id* (plugins adopt),
//! `dropping` ones are dropped again. Destroy looks up outcome-unknown instances with
//! `find`.
//!
//! **Update.** `build` with an existing id executes the plan of desired vs recorded:
//! removed nodes dropped, failed instances replaced, `min`/`max` re-applied (drop the
//! youngest). `plan` computes the same without touching anything.
//!
//! **Destroy** is idempotent and goes in reverse dependency order; destroying an unknown
//! infrastructure is [`EngineError::NotFound`], or a no-op with
//! [`DestroyOptions::missing_ok`].
//!
//! **Locking.** `build` and `destroy` hold the store's one-writer lock of the
//! infrastructure for their whole run; a second writer waits up to
//! [`EngineOptions::lock_wait`] and then fails naming the holder.

mod creds;
mod destroy;
mod drop;
mod error;
mod events;
mod execute;
mod graph;
mod instance;
mod ops;
mod options;
mod plan;
mod render;
mod status;

pub use creds::{CredentialSource, NoCredentials};
pub use destroy::DestroyReport;
pub use error::{AfterFailure, BuildError, EngineError, NodeFailure};
pub use options::{Backoff, BuildOptions, DestroyOptions, EngineOptions, RetryPolicy};
pub use status::{InstanceStatus, StatusReport};

use occopus_model::event::Event;
use occopus_model::plugin::PluginHost;
use occopus_model::{InfraId, Plan, ResolvedInfra};
use occopus_state::{InfraLock, InfraState, InfraSummary, LockHolder, StateStore};
use occopus_template::Renderer;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// What a successful build did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildReport {
    pub infra_id: InfraId,
    /// The plan that was executed.
    pub plan: Plan,
    /// Instances created (and ready).
    pub created: usize,
    /// Instances dropped (update).
    pub dropped: usize,
    /// Instances kept as they were.
    pub kept: usize,
    #[serde(with = "destroy::millis")]
    pub elapsed: Duration,
}

/// The engine. Cheap to clone; clones share plugins, store and event channel.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub host: Arc<dyn PluginHost>,
    pub store: Arc<dyn StateStore>,
    pub opts: EngineOptions,
    pub renderer: Renderer,
    pub events: events::Bus,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("opts", &self.inner.opts)
            .finish()
    }
}

impl Engine {
    pub fn new(
        host: Arc<dyn PluginHost>,
        store: Arc<dyn StateStore>,
        options: EngineOptions,
    ) -> Self {
        let events = events::Bus::new(options.event_capacity);
        Self {
            inner: Arc::new(Inner {
                host,
                store,
                renderer: Renderer::new(options.template),
                opts: options,
                events,
            }),
        }
    }

    /// The options this engine was made with.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.opts
    }

    /// Receive the events emitted from now on (by any operation of this engine); a
    /// receiver more than `event_capacity` events behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Receive every event emitted from now on, none lost: the queue grows while the
    /// receiver is behind. For what must be complete (a JSON event log); drop the
    /// receiver when done.
    pub fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
        self.inner.events.listen()
    }

    /// What `build` would do: desired `infra` against the recorded state of `infra_id`
    /// (none: a new infrastructure). Touches nothing and calls no plugin.
    pub async fn plan(
        &self,
        infra: &ResolvedInfra,
        infra_id: Option<&InfraId>,
    ) -> Result<Plan, EngineError> {
        let graph = graph::NodeGraph::of(infra)?;
        let state = match infra_id {
            Some(id) => self.inner.store.load(id).await?,
            None => None,
        };
        Ok(plan::compute(infra, &graph, state.as_ref()))
    }

    /// Build a new infrastructure, or update/resume `options.infra_id`.
    pub async fn build(
        &self,
        infra: &ResolvedInfra,
        creds: Arc<dyn CredentialSource>,
        options: BuildOptions,
    ) -> Result<BuildReport, BuildError> {
        self.build_impl(Arc::new(infra.clone()), creds, options)
            .await
    }

    /// [`build`](Self::build) of a shared description: the build's instance tasks read
    /// it as it is, without a copy (a 10,000-node description is megabytes).
    pub async fn build_shared(
        &self,
        infra: Arc<ResolvedInfra>,
        creds: Arc<dyn CredentialSource>,
        options: BuildOptions,
    ) -> Result<BuildReport, BuildError> {
        self.build_impl(infra, creds, options).await
    }

    /// Drop every instance of an infrastructure and forget it.
    pub async fn destroy(
        &self,
        infra_id: &InfraId,
        creds: Arc<dyn CredentialSource>,
        options: DestroyOptions,
    ) -> Result<DestroyReport, EngineError> {
        self.destroy_impl(infra_id, creds, options).await
    }

    /// The live status of every recorded instance (asks the plugins; writes nothing).
    pub async fn status(
        &self,
        infra_id: &InfraId,
        creds: Arc<dyn CredentialSource>,
    ) -> Result<StatusReport, EngineError> {
        self.status_impl(infra_id, creds).await
    }

    /// The recorded state of an infrastructure, without asking any plugin.
    pub async fn recorded(&self, infra_id: &InfraId) -> Result<Option<InfraState>, EngineError> {
        Ok(self.inner.store.load(infra_id).await?)
    }

    /// Every infrastructure in the store, oldest first.
    pub async fn list(&self) -> Result<Vec<InfraSummary>, EngineError> {
        Ok(self.inner.store.list().await?)
    }

    async fn lock(&self, id: &InfraId, verb: &str) -> Result<InfraLock, EngineError> {
        let holder = LockHolder::this_process(format!("{} {verb}", self.inner.opts.command));
        Ok(self
            .inner
            .store
            .lock(id, &holder, self.inner.opts.lock_wait)
            .await?)
    }
}
