//! Per-plugin instance pools and calls under a budget.
//!
//! Owns: instantiation from the plugin's `InstancePre` into a fresh `Store` (memory cap,
//! epoch deadline), reuse of idle instances between calls, recycling after N calls, the
//! concurrency limit (a semaphore per plugin), and running one export call with a time
//! budget: the epoch callback yields every tick and interrupts once the budget is spent,
//! and an outer `tokio::time::timeout` covers host awaits. A trap, timeout, memory
//! blow-up or oversized output discards the instance (a trapped store is poisoned) and
//! becomes [`PluginError::Crashed`] with the guest's stderr tail (its panic message).
//!
//! Must not: put an instance back after anything but a clean return.

use crate::bindings::host_api::occopus::plugin::types::PluginError as WitError;
use crate::bindings::{config_manager as cm, health_checker as hc, resource_handler as rh};
use crate::engine::EPOCH_TICK;
use crate::grants::CallPolicy;
use crate::state::{PluginShared, PluginState};
use occopus_model::plugin::{NodeContext, PluginError};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// Extra time the outer timeout allows beyond the budget before giving up on a call that
/// is stuck in a host await.
const OUTER_GRACE: Duration = Duration::from_millis(5 * EPOCH_TICK.as_millis() as u64);

/// Most of a guest's stderr quoted in a crash message.
const MAX_QUOTED_STDERR: usize = 2048;

/// The typed `InstancePre` of a plugin, by kind.
#[derive(Clone)]
pub(crate) enum KindPre {
    ResourceHandler(rh::ResourceHandlerPluginPre<PluginState>),
    HealthChecker(hc::HealthCheckerPluginPre<PluginState>),
    ConfigManager(cm::ConfigManagerPluginPre<PluginState>),
}

/// The bindings of one live instance, by kind.
pub(crate) enum Bindings {
    ResourceHandler(rh::ResourceHandlerPlugin),
    HealthChecker(hc::HealthCheckerPlugin),
    ConfigManager(cm::ConfigManagerPlugin),
}

fn wrong_kind() -> wasmtime::Error {
    wasmtime::format_err!("internal error: plugin called through the wrong kind of interface")
}

impl Bindings {
    pub fn resource_handler(
        &self,
    ) -> wasmtime::Result<&rh::exports::occopus::plugin::resource_handler::Guest> {
        match self {
            Self::ResourceHandler(b) => Ok(b.occopus_plugin_resource_handler()),
            _ => Err(wrong_kind()),
        }
    }
    pub fn health_checker(
        &self,
    ) -> wasmtime::Result<&hc::exports::occopus::plugin::health_checker::Guest> {
        match self {
            Self::HealthChecker(b) => Ok(b.occopus_plugin_health_checker()),
            _ => Err(wrong_kind()),
        }
    }
    pub fn config_manager(
        &self,
    ) -> wasmtime::Result<&cm::exports::occopus::plugin::config_manager::Guest> {
        match self {
            Self::ConfigManager(b) => Ok(b.occopus_plugin_config_manager()),
            _ => Err(wrong_kind()),
        }
    }
}

impl Bindings {
    /// `validate(type_name, section)` on whichever kind this is (every kind exports it).
    pub async fn call_validate(
        &self,
        store: &mut Store<PluginState>,
        type_name: &str,
        section: &str,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let (t, s) = (type_name.to_string(), section.to_string());
        match self {
            Self::ResourceHandler(b) => {
                b.occopus_plugin_resource_handler()
                    .call_validate(store, &t, &s)
                    .await
            }
            Self::HealthChecker(b) => {
                b.occopus_plugin_health_checker()
                    .call_validate(store, &t, &s)
                    .await
            }
            Self::ConfigManager(b) => {
                b.occopus_plugin_config_manager()
                    .call_validate(store, &t, &s)
                    .await
            }
        }
    }
}

impl KindPre {
    async fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Self::ResourceHandler(p) => {
                Bindings::ResourceHandler(p.instantiate_async(store).await?)
            }
            Self::HealthChecker(p) => Bindings::HealthChecker(p.instantiate_async(store).await?),
            Self::ConfigManager(p) => Bindings::ConfigManager(p.instantiate_async(store).await?),
        })
    }
}

/// A plugin returned more than the host accepts.
#[derive(Debug)]
pub(crate) struct OutputTooLarge(pub String);

impl std::fmt::Display for OutputTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for OutputTooLarge {}

/// Fail with [`OutputTooLarge`] when `size` exceeds `max`.
pub(crate) fn bound(size: usize, max: usize, operation: &str) -> wasmtime::Result<()> {
    if size > max {
        return Err(wasmtime::Error::new(OutputTooLarge(format!(
            "returned {} from `{operation}`; at most {} is accepted",
            mib(size),
            mib(max)
        ))));
    }
    Ok(())
}

fn mib(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
}

/// A live instance.
pub(crate) struct Instance {
    store: Store<PluginState>,
    bindings: Bindings,
    calls: u32,
}

/// The future one export call returns.
pub(crate) type CallFuture<'s, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 's>>;

/// Instances of one plugin.
pub(crate) struct InstancePool {
    engine: Engine,
    pre: KindPre,
    shared: Arc<PluginShared>,
    permits: Semaphore,
    idle: Mutex<Vec<Instance>>,
    recycle_after: u32,
}

impl InstancePool {
    pub fn new(engine: Engine, pre: KindPre, shared: Arc<PluginShared>) -> Self {
        let recycle_after = shared.runtime.limits.recycle_after_calls.max(1);
        Self {
            engine,
            pre,
            permits: Semaphore::new(shared.limits.max_instances),
            idle: Mutex::new(Vec::new()),
            shared,
            recycle_after,
        }
    }

    pub fn shared(&self) -> &Arc<PluginShared> {
        &self.shared
    }

    async fn instantiate(&self, budget: Duration) -> Result<Instance, String> {
        let mut store = Store::new(&self.engine, PluginState::new(self.shared.clone()));
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().call.deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.data_mut().call.deadline = Instant::now() + budget;
        store.data_mut().call.budget = budget;
        store.set_epoch_deadline(1);
        let r = tokio::time::timeout(budget + OUTER_GRACE, self.pre.instantiate(&mut store)).await;
        match r {
            Ok(Ok(bindings)) => Ok(Instance {
                store,
                bindings,
                calls: 0,
            }),
            Ok(Err(e)) => Err(format!(
                "could not be instantiated: {}",
                describe(&e, store.data())
            )),
            Err(_) => Err(format!(
                "could not be instantiated within {}",
                fmt_duration(budget)
            )),
        }
    }

    /// Instantiate a fresh instance within the `metadata` budget and drop it (not pooled):
    /// for benchmarks and `plugins inspect --check`-style diagnostics.
    pub async fn instantiate_and_drop(&self) -> Result<(), String> {
        let budget = self.shared.limits.budget("metadata");
        self.instantiate(budget).await.map(drop)
    }

    /// Have `count` idle instances ready ahead of calls the engine expects (dependents of
    /// a node that has started), so that their first calls find a warm instance instead
    /// of instantiating one on the critical path. Each instantiation
    /// holds a call permit, and live instances (idle and busy) never exceed the plugin's
    /// `max_instances`: warming stops at that limit, when the permits are taken, once
    /// `count` are idle, or at the first failure. Returns how many instances were made.
    pub async fn prewarm(&self, type_name: &str, count: usize) -> usize {
        let budget = self.shared.limits.budget("metadata");
        let mut made = 0;
        while made < count {
            let Ok(_permit) = self.permits.try_acquire() else {
                break;
            };
            // Live after this instantiation: the idle ones plus every permit taken
            // (this one included); the permits left bound the idle ones.
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).len();
            if idle >= count || idle > self.permits.available_permits() {
                break;
            }
            let mut inst = match self.instantiate(budget).await {
                Ok(inst) => inst,
                Err(_) => break,
            };
            if self.warm(&mut inst, type_name).await.is_err() {
                break;
            }
            self.put_back(inst);
            made += 1;
        }
        made
    }

    /// One cheap call on a fresh instance: the guest's first call runs its
    /// constructors, sets up its allocator and faults in its stack and the first pages
    /// of its heap, work that would otherwise land on the first real call. The call is
    /// `validate(type, null)`: pure by contract, the same export in every kind, and
    /// answered with an error that is ignored here. Only a trap or a timeout fails it.
    async fn warm(&self, inst: &mut Instance, type_name: &str) -> Result<(), ()> {
        let budget = self.shared.limits.budget("validate");
        let policy = CallPolicy::new(self.shared.grants.clone());
        inst.store
            .data_mut()
            .begin_call("warm-up", policy, None, budget);
        inst.store.set_epoch_deadline(1);
        let Instance {
            store, bindings, ..
        } = inst;
        let call = bindings.call_validate(store, type_name, "null");
        match tokio::time::timeout(budget + OUTER_GRACE, call).await {
            // The plugin's answer (an error, as asked) does not matter; a trap does.
            Ok(Ok(_)) => Ok(()),
            _ => Err(()),
        }
    }

    /// Idle instances now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn take_idle(&self) -> Option<Instance> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put_back(&self, inst: Instance) {
        if inst.calls < self.recycle_after {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(inst);
        }
    }

    fn crashed(&self, operation: &str, cause: String) -> PluginError {
        tracing::warn!(target: "occopus::plugin", plugin = %self.shared.name, operation, "plugin crashed: {cause}");
        PluginError::Crashed {
            plugin: self.shared.name.clone(),
            operation: operation.to_string(),
            cause,
        }
    }

    /// Run one export call on an idle or fresh instance within the operation's budget.
    pub async fn call<R, F>(
        &self,
        operation: &'static str,
        policy: CallPolicy,
        node: Option<NodeContext>,
        f: F,
    ) -> Result<R, PluginError>
    where
        R: Send,
        F: for<'s> FnOnce(&'s mut Store<PluginState>, &'s Bindings) -> CallFuture<'s, R> + Send,
    {
        let budget = self.shared.limits.budget(operation);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| self.crashed(operation, "the plugin is shutting down".into()))?;
        let mut inst = match self.take_idle() {
            Some(i) => i,
            None => self
                .instantiate(budget)
                .await
                .map_err(|c| self.crashed(operation, c))?,
        };
        inst.store
            .data_mut()
            .begin_call(operation, policy, node, budget);
        inst.store.set_epoch_deadline(1);
        let Instance {
            store, bindings, ..
        } = &mut inst;
        let r = tokio::time::timeout(budget + OUTER_GRACE, f(store, bindings)).await;
        match r {
            Ok(Ok(v)) => {
                inst.calls += 1;
                self.put_back(inst);
                Ok(v)
            }
            Ok(Err(e)) => Err(self.crashed(operation, describe(&e, inst.store.data()))),
            Err(_) => {
                let st = inst.store.data();
                let mut cause = format!("exceeded its time budget of {}", fmt_duration(budget));
                if let Some(h) = st.call.in_host_call {
                    cause.push_str(&format!(" (while waiting in host call `{h}`)"));
                }
                Err(self.crashed(operation, with_stderr(cause, st)))
            }
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Why a call failed, for [`PluginError::Crashed`].
fn describe(e: &wasmtime::Error, st: &PluginState) -> String {
    let mut cause = if let Some(o) = e.downcast_ref::<OutputTooLarge>() {
        o.0.clone()
    } else if let Some(trap) = e.downcast_ref::<Trap>() {
        match trap {
            Trap::Interrupt => format!(
                "exceeded its time budget of {}",
                fmt_duration(st.call.budget)
            ),
            Trap::UnreachableCodeReached => {
                "trapped: wasm `unreachable` executed (a panic or abort)".to_string()
            }
            Trap::StackOverflow => "trapped: stack overflow".to_string(),
            other => format!("trapped: {other}"),
        }
    } else {
        format!("host error: {e}")
    };
    if let Some(total) = st.limiter.refused {
        cause = format!(
            "hit its memory cap of {} (tried to grow to {}); {cause}",
            mib(st.shared.limits.memory_bytes),
            mib(total)
        );
    }
    with_stderr(cause, st)
}

fn with_stderr(cause: String, st: &PluginState) -> String {
    let tail = st.stderr.tail();
    let text: Vec<&str> = tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    if text.is_empty() {
        return cause;
    }
    let mut quoted = text.join(" | ");
    if quoted.len() > MAX_QUOTED_STDERR {
        let mut cut = quoted.len() - MAX_QUOTED_STDERR;
        while !quoted.is_char_boundary(cut) {
            cut += 1;
        }
        quoted = format!("…{}", &quoted[cut..]);
    }
    format!("{cause}; stderr: {quoted}")
}
