//! The simulation: deterministic choices per (seed, node id), instance data, and the
//! pure state function. Time comes from a [`Clock`] so tests run without a host.
//!
//! Per-plugin-instance counters (`fail_on_call`, `transient_failures`) live in
//! [`Counters`]; the binding layer keeps one in a static, i.e. one per plugin instance.

use crate::config::{Latency, Network, SimSection};
use occopus_sdk::{Addresses, NodeContext, PluginError, ResourceState, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Time source and sleep. The plugin uses the host clock; tests use a fake.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Suspend for `ms` (never busy-wait).
    fn sleep_ms(&self, ms: u64);
}

/// Counters that belong to one plugin instance.
#[derive(Debug, Default)]
pub struct Counters {
    /// `create` calls seen so far.
    pub create_calls: u64,
    /// Transient failures already returned, per node id.
    pub transient_given: BTreeMap<String, u32>,
}

impl Counters {
    /// Nothing counted yet.
    pub const fn new() -> Self {
        Self {
            create_calls: 0,
            transient_given: BTreeMap::new(),
        }
    }
}

/// What `create` returns and later calls read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Simulated resource id, derived from the node id.
    pub sim_id: String,
    /// The node id it was made for.
    pub node_id: String,
    /// When it was created (Unix ms; 0 for adopted instances).
    pub created_ms: u64,
    /// Resolved time from creation to ready.
    pub ready_after_ms: u64,
    /// Resolved latency of destroy.
    pub destroy_ms: u64,
    /// Whether it ends `failed` instead of ready.
    pub fails: bool,
    /// Primary address.
    pub primary: String,
    /// Private address.
    pub private: String,
    /// Price per hour, if simulated.
    pub cost_per_hour: Option<f64>,
}

/// Purposes of random draws, so each choice gets an independent stream.
#[derive(Clone, Copy)]
enum Draw {
    CreateLatency,
    ReadyLatency,
    DestroyLatency,
    FailCreate,
    FailState,
    Address,
}

/// 64-bit FNV-1a of the node id, mixed with seed and purpose through splitmix64.
fn draw(seed: u64, node_id: &str, purpose: Draw) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut x = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((purpose as u64 + 1) << 56);
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1).
fn unit(seed: u64, node_id: &str, purpose: Draw) -> f64 {
    (draw(seed, node_id, purpose) >> 11) as f64 / (1u64 << 53) as f64
}

fn resolve(latency: Latency, seed: u64, node_id: &str, purpose: Draw) -> u64 {
    match latency {
        Latency::Fixed(ms) => ms,
        Latency::Range([min, max]) => {
            let span = max - min;
            if span == u64::MAX {
                return min.wrapping_add(draw(seed, node_id, purpose));
            }
            min + draw(seed, node_id, purpose) % (span + 1)
        }
    }
}

/// Addresses of a node: primary in 127.0.0.0/8 or 10.0.0.0/8, private in 10.0.0.0/8.
pub fn addresses_for(node_id: &str, seed: u64, network: Network) -> (String, String) {
    let [_, _, _, _, _, a, b, c] = draw(seed, node_id, Draw::Address).to_be_bytes();
    // Keep clear of network and broadcast-looking octets, and of 127.0.0.x, which the
    // `local` backend hands out.
    let a = a.clamp(1, 254);
    let c = c.clamp(1, 254);
    let private = format!("10.{a}.{b}.{c}");
    let primary = match network {
        Network::Loopback => format!("127.{a}.{b}.{c}"),
        Network::Private => private.clone(),
    };
    (primary, private)
}

/// Build the deterministic instance data for `node`, created at `created_ms`.
pub fn instance_for(s: &SimSection, node: &NodeContext, created_ms: u64) -> Instance {
    let id = node.node_id.as_str();
    let (primary, private) = addresses_for(id, s.seed, s.network);
    Instance {
        sim_id: format!("sim-{:016x}", draw(s.seed, id, Draw::Address)),
        node_id: node.node_id.clone(),
        created_ms,
        ready_after_ms: resolve(s.ready_after_ms, s.seed, id, Draw::ReadyLatency),
        destroy_ms: resolve(s.destroy_ms, s.seed, id, Draw::DestroyLatency),
        fails: s.fail_state > 0.0 && unit(s.seed, id, Draw::FailState) < s.fail_state,
        primary,
        private,
        cost_per_hour: s.cost_per_hour,
    }
}

/// `create`: sleep the node's create latency, then fail as configured or return the
/// instance.
pub fn create(
    s: &SimSection,
    node: &NodeContext,
    clock: &dyn Clock,
    counters: &mut Counters,
) -> Result<Instance> {
    counters.create_calls += 1;
    let call = counters.create_calls;
    let id = node.node_id.as_str();
    clock.sleep_ms(resolve(s.create_ms, s.seed, id, Draw::CreateLatency));

    if s.fail_on_call == Some(call) {
        return Err(PluginError::internal(format!(
            "sim: simulated failure of create call #{call} of this plugin instance (fail_on_call)"
        )));
    }
    if s.fail_nodes.contains(&node.node_name) {
        return Err(PluginError::internal(format!(
            "sim: simulated failure: node `{}` is listed in fail_nodes",
            node.node_name
        )));
    }
    if s.fail_create > 0.0 && unit(s.seed, id, Draw::FailCreate) < s.fail_create {
        return Err(PluginError::internal(format!(
            "sim: simulated create failure of node {id} (fail_create)"
        )));
    }
    let given = counters.transient_given.entry(id.to_string()).or_insert(0);
    if *given < s.transient_failures {
        *given += 1;
        return Err(PluginError::transient(format!(
            "sim: simulated transient error {} of {} for node {id}",
            *given, s.transient_failures
        )));
    }
    counters.transient_given.remove(id);
    Ok(instance_for(s, node, clock.now_ms()))
}

/// `find`: nothing, unless the section says `adopt: true`; then the instance as if it
/// had been created long ago.
pub fn find(s: &SimSection, node: &NodeContext) -> Option<Instance> {
    s.adopt.then(|| instance_for(s, node, 0))
}

/// `state`: a pure function of the instance data and the time.
/// Milliseconds until a pending instance is ready (`None` once it is).
pub fn ready_in(inst: &Instance, now_ms: u64) -> Option<u64> {
    let ready_at = inst.created_ms.saturating_add(inst.ready_after_ms);
    (now_ms < ready_at).then(|| ready_at - now_ms)
}

pub fn state(inst: &Instance, now_ms: u64) -> ResourceState {
    let ready_at = inst.created_ms.saturating_add(inst.ready_after_ms);
    if now_ms < ready_at {
        ResourceState::pending(format!("starting; ready in {} ms", ready_at - now_ms))
    } else if inst.fails {
        ResourceState::failed("simulated instance failure (fail_state)")
    } else {
        ResourceState::ready()
    }
}

/// `addresses` of an instance.
pub fn addresses(inst: &Instance) -> Addresses {
    let mut all = vec![inst.primary.clone()];
    if inst.private != inst.primary {
        all.push(inst.private.clone());
    }
    Addresses {
        primary: Some(inst.primary.clone()),
        private: Some(inst.private.clone()),
        all,
    }
}

/// `cost`: uptime times price, when a price is set. Adopted instances (creation time
/// unknown, recorded as 0) cost nothing.
pub fn cost(inst: &Instance, now_ms: u64) -> Option<f64> {
    if inst.created_ms == 0 {
        return inst.cost_per_hour.map(|_| 0.0);
    }
    let hours = now_ms.saturating_sub(inst.created_ms) as f64 / 3_600_000.0;
    inst.cost_per_hour.map(|p| p * hours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::{Cell, RefCell};

    #[derive(Default)]
    struct FakeClock {
        now: Cell<u64>,
        slept: RefCell<Vec<u64>>,
    }
    impl Clock for FakeClock {
        fn now_ms(&self) -> u64 {
            self.now.get()
        }
        fn sleep_ms(&self, ms: u64) {
            self.slept.borrow_mut().push(ms);
            self.now.set(self.now.get() + ms);
        }
    }

    fn node(name: &str, id: &str) -> NodeContext {
        NodeContext {
            infra_id: "i".into(),
            infra_name: "infra".into(),
            node_name: name.into(),
            node_id: id.into(),
            user_id: None,
        }
    }

    fn section(v: serde_json::Value) -> SimSection {
        SimSection::parse(&v).unwrap()
    }

    #[test]
    fn same_seed_and_node_give_the_same_instance() {
        let s = section(json!({"type": "sim", "ready_after_ms": [100, 5000], "seed": 3}));
        let a = instance_for(&s, &node("web", "n-1"), 10);
        let b = instance_for(&s, &node("web", "n-1"), 10);
        assert_eq!(a, b);
        assert!((100..=5000).contains(&a.ready_after_ms));
        // Different nodes (and seeds) spread over the range.
        let values: std::collections::HashSet<u64> = (0..50)
            .map(|i| instance_for(&s, &node("web", &format!("n-{i}")), 0).ready_after_ms)
            .collect();
        assert!(values.len() > 40, "{values:?}");
        let other_seed = section(json!({"type": "sim", "ready_after_ms": [100, 5000], "seed": 4}));
        assert_ne!(
            instance_for(&other_seed, &node("web", "n-1"), 10).ready_after_ms,
            a.ready_after_ms
        );
    }

    #[test]
    fn create_sleeps_on_the_host_clock_and_state_follows_time() {
        let s = section(json!({"type": "sim", "create_ms": 250, "ready_after_ms": 1000}));
        let clock = FakeClock::default();
        clock.now.set(5_000);
        let inst = create(&s, &node("db", "n-db"), &clock, &mut Counters::default()).unwrap();
        assert_eq!(*clock.slept.borrow(), vec![250]);
        assert_eq!(inst.created_ms, 5_250);
        assert_eq!(state(&inst, 5_250).status, occopus_sdk::NodeStatus::Pending);
        assert_eq!(state(&inst, 6_249).status, occopus_sdk::NodeStatus::Pending);
        assert_eq!(state(&inst, 6_250), ResourceState::ready());
    }

    #[test]
    fn zero_latency_makes_no_sleep_call_worth_waiting_for() {
        let s = section(json!({"type": "sim"}));
        let clock = FakeClock::default();
        let inst = create(&s, &node("a", "n"), &clock, &mut Counters::default()).unwrap();
        assert_eq!(clock.now.get(), 0);
        assert_eq!(state(&inst, 0), ResourceState::ready());
    }

    #[test]
    fn fail_state_fraction_is_close_to_the_probability() {
        let s = section(json!({"type": "sim", "fail_state": 0.3, "seed": 11}));
        let failed = (0..2000)
            .filter(|i| instance_for(&s, &node("w", &format!("node-{i}")), 0).fails)
            .count();
        assert!((500..700).contains(&failed), "{failed} of 2000 failed");
        let inst = instance_for(&s, &node("w", "node-1"), 0);
        let expected = if inst.fails { "failed" } else { "ready" };
        let got = serde_json::to_value(state(&inst, 1).status).unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn fail_nodes_and_fail_create_fail_permanently() {
        let s = section(json!({"type": "sim", "fail_nodes": ["db"]}));
        let clock = FakeClock::default();
        let e = create(&s, &node("db", "n"), &clock, &mut Counters::default()).unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("fail_nodes"), "{e}");
        create(&s, &node("web", "n"), &clock, &mut Counters::default()).unwrap();

        let all = section(json!({"type": "sim", "fail_create": 1.0}));
        assert!(create(&all, &node("web", "n"), &clock, &mut Counters::default()).is_err());
        let half = section(json!({"type": "sim", "fail_create": 0.5}));
        let failures = (0..400)
            .filter(|i| {
                create(
                    &half,
                    &node("w", &format!("n{i}")),
                    &clock,
                    &mut Counters::default(),
                )
                .is_err()
            })
            .count();
        assert!((150..250).contains(&failures), "{failures}");
    }

    #[test]
    fn fail_on_call_counts_calls_of_one_plugin_instance() {
        let s = section(json!({"type": "sim", "fail_on_call": 3}));
        let clock = FakeClock::default();
        let mut counters = Counters::default();
        let results: Vec<bool> = (0..5)
            .map(|i| create(&s, &node("w", &format!("n{i}")), &clock, &mut counters).is_ok())
            .collect();
        assert_eq!(results, [true, true, false, true, true]);
    }

    #[test]
    fn transient_failures_precede_success_per_node() {
        let s = section(json!({"type": "sim", "transient_failures": 2}));
        let clock = FakeClock::default();
        let mut counters = Counters::default();
        for _ in 0..2 {
            let e = create(&s, &node("w", "a"), &clock, &mut counters).unwrap_err();
            assert!(e.is_retryable(), "{e}");
        }
        // Another node has its own count.
        assert!(create(&s, &node("w", "b"), &clock, &mut counters).is_err());
        assert!(create(&s, &node("w", "a"), &clock, &mut counters).is_ok());
        assert!(create(&s, &node("w", "b"), &clock, &mut counters).is_err());
        assert!(create(&s, &node("w", "b"), &clock, &mut counters).is_ok());
    }

    #[test]
    fn find_adopts_only_when_asked() {
        let n = node("w", "n-7");
        assert_eq!(find(&section(json!({"type": "sim"})), &n), None);
        let s = section(json!({"type": "sim", "adopt": true, "ready_after_ms": 500}));
        let found = find(&s, &n).unwrap();
        assert_eq!(found, instance_for(&s, &n, 0));
        assert_eq!(state(&found, 1_000_000), ResourceState::ready());
    }

    #[test]
    fn addresses_are_stable_and_loopback_by_default() {
        let s = section(json!({"type": "sim"}));
        let inst = instance_for(&s, &node("w", "n-1"), 0);
        let a = addresses(&inst);
        let primary = a.primary.clone().unwrap();
        assert!(primary.starts_with("127."), "{primary}");
        assert!(!primary.starts_with("127.0.0."), "{primary}");
        assert!(a.private.clone().unwrap().starts_with("10."));
        assert_eq!(a.all.len(), 2);
        assert_eq!(addresses(&instance_for(&s, &node("w", "n-1"), 99)), a);
        assert_ne!(addresses(&instance_for(&s, &node("w", "n-2"), 0)), a);

        let p = section(json!({"type": "sim", "network": "private"}));
        let a = addresses(&instance_for(&p, &node("w", "n-1"), 0));
        assert_eq!(a.primary, a.private);
        assert_eq!(a.all.len(), 1);
    }

    #[test]
    fn instance_data_round_trips_and_costs_accrue() {
        let s = section(json!({"type": "sim", "cost_per_hour": 2.0}));
        let inst = instance_for(&s, &node("w", "n"), 1_000);
        let text = serde_json::to_string(&inst).unwrap();
        let data = occopus_sdk::Json::from_text("instance data", text);
        assert_eq!(data.parse_instance::<Instance>().unwrap(), inst);
        assert_eq!(cost(&inst, 1_801_000), Some(1.0));
        let adopted = instance_for(&s, &node("w", "n"), 0);
        assert_eq!(cost(&adopted, 1_801_000), Some(0.0));
        let e = occopus_sdk::Json::from_value("instance data", json!({"sim_id": 1}))
            .parse_instance::<Instance>()
            .unwrap_err();
        assert!(!e.is_retryable());
        assert_eq!(
            cost(
                &instance_for(&section(json!({"type": "sim"})), &node("w", "n"), 0),
                5
            ),
            None
        );
    }
}
