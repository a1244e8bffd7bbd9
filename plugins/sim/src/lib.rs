//! `sim`: a simulated resource handler for tests and benchmarks. Nothing real is created;
//! latency, readiness and failures follow the section (see [`config::SimSection`]) and are
//! deterministic per `seed` and node id, so a run can be repeated exactly.
//!
//! Layout: [`config`] (section type, checks, JSON Schema) and [`sim`] (the pure
//! simulation) are plain Rust, unit-tested natively; this file only binds them to the
//! host: the host clock, and one set of [`sim::Counters`] per plugin instance.
//!
//! * Latencies are slept with the host `clock.sleep` (never a busy-wait); the default is
//!   zero, so a 1,000-node build costs no simulated time.
//! * `state` is a pure function of the instance data (creation time, resolved latency,
//!   resolved fate) and the current time.
//! * `fail_on_call` and `transient_failures` count per *plugin instance*: the host may run
//!   several instances of a plugin and replace one after a trap, which restarts its count.
//! * Addresses: primary `127.a.b.c` (answers ping on Linux, so default health checks
//!   pass), private a fake `10.a.b.c`, both derived from the node id; with
//!   `network: private` the primary is the fake `10.a.b.c` too and must not be probed.

pub mod config;
pub mod sim;

use config::SimSection;
use occopus_sdk::prelude::*;
use sim::{Clock, Counters};
use std::sync::Mutex;

/// Counters of this plugin instance (a component instance has one linear memory, so a
/// static is per instance).
static COUNTERS: Mutex<Counters> = Mutex::new(Counters::new());

/// The host clock.
struct HostClock;

impl Clock for HostClock {
    fn now_ms(&self) -> u64 {
        occopus_sdk::clock::now_ms()
    }
    fn sleep_ms(&self, ms: u64) {
        occopus_sdk::clock::sleep_ms(ms);
    }
}

/// The `sim` resource handler.
#[derive(Default)]
pub struct Sim;

fn instance(inst: &InstanceRef) -> Result<sim::Instance> {
    inst.instance()
}

impl ResourceHandler for Sim {
    fn metadata(&self) -> Metadata {
        occopus_sdk::metadata!("sim").handles("sim", config::schema())
    }

    fn validate(&self, _type_name: &str, section: &Value) -> Result<()> {
        SimSection::parse(section).map(drop)
    }

    fn create(&self, req: &CreateRequest) -> Result<Value> {
        let section = SimSection::parse(&req.resource)?;
        let mut counters = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
        let inst = sim::create(&section, &req.node, &HostClock, &mut counters)?;
        serde_json::to_value(inst)
            .map_err(|e| PluginError::internal(format!("sim: cannot encode instance data: {e}")))
    }

    fn find(&self, req: &CreateRequest) -> Result<Option<Value>> {
        let section = SimSection::parse(&req.resource)?;
        sim::find(&section, &req.node)
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| PluginError::internal(format!("sim: cannot encode instance data: {e}")))
    }

    fn state(&self, inst: &InstanceRef) -> Result<ResourceState> {
        let inst = instance(inst)?;
        let now = occopus_sdk::clock::now_ms();
        // The simulator knows when the instance will be ready: tell the host, so that
        // readiness is noticed when it happens, not at the next step of a backoff.
        if let Some(ms) = sim::ready_in(&inst, now) {
            occopus_sdk::clock::poll_after_ms(ms);
        }
        Ok(sim::state(&inst, now))
    }

    fn addresses(&self, inst: &InstanceRef) -> Result<Addresses> {
        Ok(sim::addresses(&instance(inst)?))
    }

    fn destroy(&self, inst: &InstanceRef) -> Result<()> {
        HostClock.sleep_ms(instance(inst)?.destroy_ms);
        Ok(())
    }

    fn cost(&self, inst: &InstanceRef) -> Result<Option<f64>> {
        Ok(sim::cost(&instance(inst)?, occopus_sdk::clock::now_ms()))
    }
}

occopus_sdk::export_resource_handler!(Sim);
