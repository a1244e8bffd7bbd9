//! The wasmtime `Engine`: its configuration and the epoch ticker.
//!
//! Owns: one engine per [`crate::Runtime`] (epoch interruption, `concurrency_support(false)`,
//! a sized pooling allocator with an on-demand fallback, wasm stack limits) and the OS
//! thread that advances the epoch every [`EPOCH_TICK`]. Must not: know about plugins.

use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Epoch tick: the granularity of time budgets and of CPU-bound guests yielding.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest linear memory an instance may have (the per-memory hard ceiling; the summing
/// limiter applies the per-plugin cap below it).
const MAX_MEMORY_BYTES: usize = 4 << 30;

fn base_config() -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    // Our exports are sync-lifted (WASIp2 style): the async task machinery only costs.
    c.concurrency_support(false);
    c.max_wasm_stack(1 << 20);
    c.async_stack_size(4 << 20);
    c.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Environment);
    // Function tables are filled at instantiation, not by a libcall at each entry's first
    // use: a libcall is a host call, and a staged call's first host call waits for its
    // turn (`state::TurnGate`), so lazy entries would stop a staged guest at its first
    // indirect call.
    c.table_lazy_init(false);
    c
}

fn pooling(max_live_instances: u32) -> PoolingAllocationConfig {
    let n = max_live_instances.max(4);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // Interpreter-based components (Python, JS) hold several core instances and
        // memories each.
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(MAX_MEMORY_BYTES)
        .max_component_instance_size(10 << 20)
        .max_core_instance_size(10 << 20)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64);
    pool
}

/// Build the engine. The pooling allocator reserves address space up front; where that
/// fails (address-space limits in some containers) the on-demand allocator is used.
pub fn build_engine(max_live_instances: u32) -> wasmtime::Result<Engine> {
    let mut c = base_config();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(
        max_live_instances,
    )));
    match Engine::new(&c) {
        Ok(e) => Ok(e),
        Err(err) => {
            tracing::warn!(error = %err, "pooling allocator unavailable; using on-demand instance allocation");
            let mut c = base_config();
            c.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&c)
        }
    }
}

/// Start the epoch ticker for `engine`. The thread holds only a weak reference and ends
/// when the engine is dropped.
pub fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("occopus-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(|_| ())
}
