//! The data of one plugin instance's `Store`: the sandboxed WASI context, the memory cap,
//! and the context of the call in progress (operation, node, reachability policy,
//! deadline, log budget, a staged call's turn); and [`TurnGate`], the call hook that
//! holds a staged call at its first host call until its turn.
//!
//! Must not: outlive its instance (a store is dropped with it, always after a trap).

use crate::config::{Limits, PluginLimits};
use crate::grants::{CallPolicy, Grants};
use crate::host::HostServices;
use crate::stdio::OutputCapture;
use occopus_model::plugin::{NodeContext, Release};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, CallHookHandler, ResourceLimiter, StoreContextMut};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What every plugin shares: the services and the runtime-wide limits.
pub(crate) struct RuntimeShared {
    pub services: Arc<dyn HostServices>,
    pub limits: Limits,
    #[allow(dead_code)]
    pub work_root: Option<PathBuf>,
}

/// What every instance of one plugin shares.
pub(crate) struct PluginShared {
    pub name: String,
    pub grants: Arc<Grants>,
    pub limits: PluginLimits,
    pub runtime: Arc<RuntimeShared>,
    /// Staged calls whose guest reached its first host call before its turn.
    pub staged_ahead: AtomicU64,
    /// Staged calls evicted by a call in turn (they did nothing and ran later).
    pub staged_evicted: AtomicU64,
}

impl PluginShared {
    pub fn new(
        name: String,
        grants: Arc<Grants>,
        limits: PluginLimits,
        runtime: Arc<RuntimeShared>,
    ) -> Self {
        Self {
            name,
            grants,
            limits,
            runtime,
            staged_ahead: AtomicU64::new(0),
            staged_evicted: AtomicU64::new(0),
        }
    }
}

/// A summing memory cap over every linear memory of the instance (wasmtime's
/// `StoreLimits::memory_size` is per memory). Creation is reported as growth from zero.
pub(crate) struct MemoryCap {
    max: usize,
    total: usize,
    /// The total the guest last tried to reach beyond the cap.
    pub refused: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.total.saturating_sub(current).saturating_add(desired);
        if next > self.max {
            self.refused = Some(next);
            return Ok(false);
        }
        self.total = next;
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The call in progress.
pub(crate) struct CallState {
    pub operation: &'static str,
    pub policy: Arc<CallPolicy>,
    pub node: Option<NodeContext>,
    pub deadline: Instant,
    pub budget: Duration,
    pub log_lines: u32,
    /// The host import the guest is blocked in, for timeout messages.
    pub in_host_call: Option<&'static str>,
    /// The plugin's `clock.poll-after` hint of this call, milliseconds (bounded).
    pub poll_after_ms: Option<u64>,
    /// A staged call's turn: its first host call waits for this release (see
    /// [`TurnGate`]); `None` once passed, and for every other call.
    pub turn: Option<Release>,
}

impl CallState {
    /// Time left in the call's budget.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Store data of one instance.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryCap,
    pub shared: Arc<PluginShared>,
    pub call: CallState,
    pub stderr: OutputCapture,
    /// The policy the wasi:sockets address check reads (it runs outside `&mut self`).
    socket_policy: Arc<RwLock<Arc<CallPolicy>>>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl PluginState {
    /// A fresh store state: no preopens, no environment, no arguments; stdout and stderr
    /// captured; TCP only through the per-call address check.
    pub fn new(shared: Arc<PluginShared>) -> Self {
        let tail = shared.runtime.limits.stderr_tail_bytes;
        let stderr = OutputCapture::new(&shared.name, "stderr", tail);
        let stdout = OutputCapture::new(&shared.name, "stdout", 0);
        let policy = Arc::new(CallPolicy::new(shared.grants.clone()));
        let socket_policy = Arc::new(RwLock::new(policy.clone()));
        let check_policy = socket_policy.clone();
        let mut b = WasiCtx::builder();
        b.stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(true)
            .allow_udp(false)
            .allow_ip_name_lookup(true)
            .socket_addr_check(move |addr, usage| {
                let policy = check_policy
                    .read()
                    .map(|p| p.clone())
                    .unwrap_or_else(|p| p.into_inner().clone());
                Box::pin(async move {
                    match usage {
                        // Implicit binds before a connect use the wildcard address.
                        SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                        SocketAddrUse::TcpConnect => {
                            tokio::spawn(async move { policy.check_socket_addr(addr).await })
                                .await
                                .unwrap_or(false)
                        }
                        _ => false,
                    }
                })
            });
        let limiter = MemoryCap {
            max: shared.limits.memory_bytes,
            total: 0,
            refused: None,
        };
        Self {
            wasi: b.build(),
            table: ResourceTable::new(),
            limiter,
            call: CallState {
                operation: "instantiate",
                policy,
                node: None,
                deadline: Instant::now(),
                budget: Duration::ZERO,
                log_lines: 0,
                in_host_call: None,
                poll_after_ms: None,
                turn: None,
            },
            shared,
            stderr,
            socket_policy,
        }
    }

    /// Start a call: set its context and clear the stderr tail.
    pub fn begin_call(
        &mut self,
        operation: &'static str,
        policy: CallPolicy,
        node: Option<NodeContext>,
        budget: Duration,
    ) {
        let policy = Arc::new(policy);
        match self.socket_policy.write() {
            Ok(mut g) => *g = policy.clone(),
            Err(p) => *p.into_inner() = policy.clone(),
        }
        self.stderr.clear();
        self.limiter.refused = None;
        self.call = CallState {
            operation,
            policy,
            node,
            deadline: Instant::now() + budget,
            budget,
            log_lines: 0,
            in_host_call: None,
            poll_after_ms: None,
            turn: None,
        };
    }

    /// Plugin name.
    pub fn plugin(&self) -> &str {
        &self.shared.name
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.runtime.limits
    }

    pub fn services(&self) -> Arc<dyn HostServices> {
        self.shared.runtime.services.clone()
    }
}

impl crate::bindings::host_api::occopus::plugin::types::Host for PluginState {}

/// The store's call hook while a staged call runs: the guest's first call into the host
/// of any kind (an `occopus:plugin` import, a WASI function, a runtime libcall such as
/// growing memory) waits until the call's turn is released, so that a staged `create`
/// computes ahead but has no effect, not even a reading of the clock, before its turn.
/// Passing the gate starts the call's time budget afresh.
pub(crate) struct TurnGate;

#[async_trait::async_trait]
impl CallHookHandler<PluginState> for TurnGate {
    async fn handle_call_event(
        &self,
        mut store: StoreContextMut<'_, PluginState>,
        ch: CallHook,
    ) -> wasmtime::Result<()> {
        if !matches!(ch, CallHook::CallingHost) {
            return Ok(());
        }
        let Some(turn) = store.data_mut().call.turn.take() else {
            return Ok(());
        };
        if !turn.is_released() {
            store
                .data()
                .shared
                .staged_ahead
                .fetch_add(1, Ordering::Relaxed);
            store.data_mut().call.in_host_call = Some("its first host call, waiting for its turn");
            turn.wait().await;
            store.data_mut().call.in_host_call = None;
        }
        let call = &mut store.data_mut().call;
        call.deadline = Instant::now() + call.budget;
        store.set_epoch_deadline(1);
        Ok(())
    }
}
