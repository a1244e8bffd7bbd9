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
//! A *staged* call ([`InstancePool::call_staged`]) starts before its turn: it runs the
//! guest until its first host call, which waits for the turn (the store's
//! [`TurnGate`](crate::state::TurnGate) hook). It uses only a permit that is free at once,
//! never the last one, and gives it back (its instance discarded, nothing having been
//! done) when a call in turn finds no free permit: staging never delays work whose turn
//! has come.
//!
//! Must not: put an instance back after anything but a clean return.

use crate::bindings::host_api::occopus::plugin::types::PluginError as WitError;
use crate::bindings::{config_manager as cm, health_checker as hc, resource_handler as rh};
use crate::engine::EPOCH_TICK;
use crate::grants::CallPolicy;
use crate::state::TurnGate;
use crate::state::{PluginShared, PluginState};
use occopus_model::plugin::{NodeContext, PluginError, Release};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, TryAcquireError};
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

/// What became of a staged call.
pub(crate) enum Staged<R> {
    /// It ran (its result may have come before the turn, from a guest that returned
    /// without calling the host).
    Done(Result<R, PluginError>),
    /// It did not run ahead: no permit was free, or a call in turn took its permit back.
    /// Nothing was done; make the call the ordinary way at its turn.
    NotStaged,
}

/// Staged calls waiting for their turn, which a call in turn may evict (the most recent
/// first).
#[derive(Default)]
struct StagedCalls {
    next: AtomicU64,
    waiting: Mutex<std::collections::BTreeMap<u64, Arc<Notify>>>,
}

impl StagedCalls {
    fn register(&self) -> (u64, Arc<Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        self.lock().insert(id, evict.clone());
        (id, evict)
    }

    fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Ask the most recently staged call to give its permit back; whether there was one.
    fn evict_one(&self) -> bool {
        match self.lock().pop_last() {
            Some((_, evict)) => {
                evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<Notify>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a staged call from the eviction list when it ends, however it ends.
struct Unregister<'a>(&'a StagedCalls, u64);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

/// Instances of one plugin.
pub(crate) struct InstancePool {
    engine: Engine,
    pre: KindPre,
    shared: Arc<PluginShared>,
    permits: Semaphore,
    idle: Mutex<Vec<Instance>>,
    recycle_after: u32,
    staged: StagedCalls,
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
            staged: StagedCalls::default(),
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
            let Ok(permit) = self.permits.try_acquire() else {
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
            // One instance at a time: the calls whose turn has come go first. (The
            // permit goes first: an idle instance holds none.)
            drop(permit);
            tokio::task::yield_now().await;
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
        let shutting_down = || self.crashed(operation, "the plugin is shutting down".into());
        // A call in turn takes a staged call's permit rather than wait behind it.
        let _permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(shutting_down()),
            Err(TryAcquireError::NoPermits) => {
                self.staged.evict_one();
                self.permits.acquire().await.map_err(|_| shutting_down())?
            }
        };
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
        self.finish(operation, budget, inst, r)
    }

    /// Start a call before its turn: the guest runs until its first host call, which
    /// waits for `turn`; the time budget starts when the gate is passed (before it, the
    /// guest's own computing is bounded by one budget). Only a permit free at once is
    /// used, and a call in turn that finds none evicts the most recent staged call
    /// still waiting for its turn (its instance is discarded: it did nothing).
    pub async fn call_staged<R, F>(
        &self,
        operation: &'static str,
        policy: CallPolicy,
        node: Option<NodeContext>,
        type_name: &str,
        turn: &Release,
        f: F,
    ) -> Staged<R>
    where
        R: Send,
        F: for<'s> FnOnce(&'s mut Store<PluginState>, &'s Bindings) -> CallFuture<'s, R> + Send,
    {
        let budget = self.shared.limits.budget(operation);
        // One slot always stays free for calls in turn (a dependency's polls, most
        // often), so that they rarely have to evict a staged call.
        if self.permits.available_permits() <= 1 {
            return Staged::NotStaged;
        }
        let Ok(_permit) = self.permits.try_acquire() else {
            return Staged::NotStaged;
        };
        let (id, evicted) = self.staged.register();
        let unregister = Unregister(&self.staged, id);
        // A fresh instance is warmed first (see `warm`): otherwise the guest's start-up
        // (its allocator's first growth of memory is a host call) would stop it at the
        // gate before it has done any of its own work.
        let mut inst = tokio::select! {
            biased;
            _ = evicted.notified() => {
                self.shared.staged_evicted.fetch_add(1, Ordering::Relaxed);
                return Staged::NotStaged;
            }
            i = async {
                match self.take_idle() {
                    Some(i) => Ok(i),
                    None => {
                        let mut inst = self.instantiate(budget).await?;
                        self.warm(&mut inst, type_name).await.map_err(|()| {
                            "could not be warmed up (its validate call failed)".to_string()
                        })?;
                        Ok(inst)
                    }
                }
            } => match i {
                Ok(i) => i,
                Err(c) => return Staged::Done(Err(self.crashed(operation, c))),
            },
        };
        let data = inst.store.data_mut();
        data.begin_call(operation, policy, node, budget);
        data.call.turn = Some(turn.clone());
        inst.store.call_hook_async(TurnGate);
        inst.store.set_epoch_deadline(1);
        let Instance {
            store, bindings, ..
        } = &mut inst;
        let mut call = f(store, bindings);
        // Once the turn has come, the call is polled only by the timeout below (polling
        // it here too would resume the guest twice).
        let early = tokio::select! {
            biased;
            _ = turn.wait() => None,
            r = &mut call => Some(r),
            // Dropping the call discards the instance, parked before any effect.
            _ = evicted.notified() => {
                self.shared.staged_evicted.fetch_add(1, Ordering::Relaxed);
                return Staged::NotStaged;
            }
        };
        // Its turn has come (or it is done): no longer evictable.
        drop(unregister);
        let r = match early {
            Some(r) => {
                drop(call);
                Ok(r)
            }
            None => tokio::time::timeout(budget + OUTER_GRACE, call).await,
        };
        // The gate is needed no more: a cheap no-op hook replaces it.
        inst.store.call_hook(|_, _| Ok(()));
        Staged::Done(self.finish(operation, budget, inst, r))
    }

    /// The end of a call: a clean return puts the instance back; anything else discards
    /// it and becomes [`PluginError::Crashed`].
    fn finish<R>(
        &self,
        operation: &'static str,
        budget: Duration,
        mut inst: Instance,
        r: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, PluginError> {
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
