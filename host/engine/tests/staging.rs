//! Staging: once every dependency of a node has started, the engine starts its stageable
//! instances' creates ahead of their turn (`ResourceHandler::create_staged`); nothing of
//! them is seen before their turn, a failed dependency drops them, and the parallelism
//! limit bounds how many wait.

mod support;

use occopus_engine::{BuildOptions, EngineOptions};
use occopus_model::event::{Event, EventKind};
use occopus_model::plugin::PluginError;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

fn slow(ms: u64) -> Behaviour {
    Behaviour {
        create_latency: Duration::from_millis(ms),
        ..Behaviour::default()
    }
}

/// Position of the first event matching `f`.
fn first(events: &[Event], f: impl Fn(&EventKind) -> bool) -> usize {
    events
        .iter()
        .position(|e| f(&e.kind))
        .expect("no such event")
}

fn creating(node: &str) -> impl Fn(&EventKind) -> bool + '_ {
    move |k| matches!(k, EventKind::NodeCreating { node: n, .. } if n.as_str() == node)
}

fn ready(node: &str) -> impl Fn(&EventKind) -> bool + '_ {
    move |k| matches!(k, EventKind::NodeReady { node: n, .. } if n.as_str() == node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_are_staged_while_their_dependency_is_created() {
    let env = Env::new();
    env.cloud.set("r", slow(100));
    let mut rx = env.engine.subscribe();
    let desc = infra(vec![node("r", 1, 1), node("a", 3, 3)], &[("a", "r")]);
    env.build(&desc).await;
    let staged = env.cloud.calls_of("stage", "a");
    let r_created = env.cloud.calls_of("create", "r")[0].at;
    assert_eq!(staged.len(), 3, "{:?}", env.cloud.calls());
    assert!(
        staged.iter().all(|c| c.at < r_created),
        "staged before r was made"
    );
    let creates = env.cloud.calls_of("create", "a");
    assert_eq!(creates.len(), 3);
    assert!(creates.iter().all(|c| c.at > r_created));
    // Nothing of a is seen before r is ready.
    let events = drain(&mut rx);
    assert!(first(&events, ready("r")) < first(&events, creating("a")));
    assert_eq!(env.cloud.alive().len(), 4);
    assert_eq!(env.cloud.staged_dropped.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_staging_nothing_is_started_before_its_turn() {
    let env = Env::with_options(EngineOptions {
        stage: false,
        ..fast_options()
    });
    env.cloud.set("r", slow(50));
    env.build(&infra(
        vec![node("r", 1, 1), node("a", 2, 2)],
        &[("a", "r")],
    ))
    .await;
    assert!(env.cloud.calls_of("stage", "a").is_empty());
    assert_eq!(env.cloud.calls_of("create", "a").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_staged_once_all_its_dependencies_have_started() {
    let env = Env::new();
    env.cloud.set("r", slow(50));
    env.cloud.set("b", slow(100));
    let mut rx = env.engine.subscribe();
    // r <- a, r <- b, c depends on a and b: c is staged when r is ready (a and b start),
    // and created once b is ready.
    let desc = infra(
        vec![
            node("r", 1, 1),
            node("a", 1, 1),
            node("b", 1, 1),
            node("c", 1, 1),
        ],
        &[("a", "r"), ("b", "r"), ("c", "a"), ("c", "b")],
    );
    env.build(&desc).await;
    let at = |op: &str, n: &str| env.cloud.calls_of(op, n)[0].at;
    assert!(at("stage", "c") > at("create", "r"));
    assert!(at("stage", "c") < at("create", "b"));
    assert!(at("create", "c") > at("create", "b"));
    let events = drain(&mut rx);
    assert!(first(&events, ready("b")) < first(&events, creating("c")));
    assert!(first(&events, ready("a")) < first(&events, creating("c")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_dependents_of_a_failed_node_are_dropped_unstarted() {
    let env = Env::new();
    env.cloud.set(
        "r",
        Behaviour {
            create_latency: Duration::from_millis(50),
            create_errors: vec![PluginError::internal("no capacity")],
            ..Behaviour::default()
        },
    );
    let desc = infra(vec![node("r", 1, 1), node("a", 2, 2)], &[("a", "r")]);
    let e = env
        .try_build(&desc, BuildOptions::default())
        .await
        .unwrap_err();
    assert_eq!(env.cloud.calls_of("stage", "a").len(), 2);
    assert_eq!(env.cloud.staged_dropped.load(Ordering::SeqCst), 2);
    assert!(env.cloud.calls_of("create", "a").is_empty());
    assert!(env.cloud.alive().is_empty());
    assert_eq!(e.skipped.len(), 1, "{e}");
    assert_eq!(e.skipped[0].as_str(), "a");
    assert!(e.not_started.is_empty(), "{e}");
    assert!(e.to_string().contains("no capacity"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_answer_is_held_until_the_turn() {
    let env = Env::new();
    env.cloud.set("r", slow(100));
    env.cloud.set(
        "a",
        Behaviour {
            staged_error: Some(PluginError::invalid("/image", "no such image")),
            ..Behaviour::default()
        },
    );
    let mut rx = env.engine.subscribe();
    let desc = infra(vec![node("r", 1, 1), node("a", 1, 1)], &[("a", "r")]);
    let e = env
        .try_build(&desc, BuildOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no such image"), "{e}");
    let events = drain(&mut rx);
    let failed_a = first(
        &events,
        |k| matches!(k, EventKind::NodeFailed { node, .. } if node.as_str() == "a"),
    );
    assert!(first(&events, ready("r")) < first(&events, creating("a")));
    assert!(first(&events, creating("a")) < failed_a);
    // Rolled back: r dropped, a never made.
    assert!(env.cloud.alive().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallelism_limit_bounds_staged_instances() {
    let env = Env::new();
    env.cloud.set("r", slow(100));
    let desc = infra(vec![node("r", 1, 1), node("a", 6, 6)], &[("a", "r")]);
    env.try_build(
        &desc,
        BuildOptions {
            parallelism: Some(2),
            ..BuildOptions::default()
        },
    )
    .await
    .unwrap();
    // At most two wait for their turn; the others start the ordinary way.
    assert_eq!(env.cloud.calls_of("stage", "a").len(), 2);
    assert_eq!(env.cloud.calls_of("create", "a").len(), 6);
    assert!(env.cloud.max_in_flight.load(Ordering::SeqCst) <= 2);
    assert_eq!(env.cloud.alive().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_read_other_instances_are_not_staged() {
    let env = Env::new();
    env.cloud.set("r", slow(50));
    let mut a = node("a", 1, 1);
    a.implementations[0]
        .resource
        .insert("peer".into(), serde_json::json!("{{ getip('r') }}"));
    let desc = infra(vec![node("r", 1, 1), a], &[("a", "r")]);
    env.build(&desc).await;
    assert!(env.cloud.calls_of("stage", "a").is_empty());
    assert_eq!(env.cloud.calls_of("create", "a").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_nodes_ready_within_moments_are_not_staged() {
    let env = Env::new();
    // r is ready well within the 5 ms after which its dependents would be staged.
    let desc = infra(vec![node("r", 1, 1), node("a", 2, 2)], &[("a", "r")]);
    env.build(&desc).await;
    assert!(env.cloud.calls_of("stage", "a").is_empty());
    assert_eq!(env.cloud.calls_of("create", "a").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_staged_while_instances_wait_for_a_slot() {
    let env = Env::new();
    env.cloud.set("r", slow(100));
    env.cloud.set("x", slow(100));
    // One slot: r starts first (description order) and x waits for the slot meanwhile,
    // so a (after r) is not staged.
    let desc = infra(
        vec![node("r", 1, 1), node("x", 1, 1), node("a", 1, 1)],
        &[("a", "r")],
    );
    env.try_build(
        &desc,
        BuildOptions {
            parallelism: Some(1),
            ..BuildOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(env.cloud.calls_of("stage", "a").is_empty());
    assert_eq!(env.cloud.alive().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_create_waiting_for_a_slot_is_still_polled() {
    let env = Env::new();
    env.cloud.set("r", slow(50));
    env.cloud.set("x", slow(1_000));
    env.cloud.set("a", slow(300));
    // Two slots: r and x run, a's two instances are staged. When r is ready, one of them
    // takes r's slot and the other waits for it (300 ms). While it waits, its plugin must still
    // be able to hear from the host (a call in turn asking for its instance back), so
    // the engine keeps polling it.
    let desc = infra(
        vec![node("r", 1, 1), node("x", 1, 1), node("a", 2, 2)],
        &[("a", "r")],
    );
    let poke = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.cloud.poke.notify_waiters();
    };
    let build = env.try_build(
        &desc,
        BuildOptions {
            parallelism: Some(2),
            ..BuildOptions::default()
        },
    );
    let (built, ()) = tokio::join!(build, poke);
    built.unwrap();
    let creates = env.cloud.calls_of("create", "a");
    assert_eq!(creates.len(), 2);
    let late = creates.iter().max_by_key(|c| c.at).unwrap();
    assert!(
        late.at > Duration::from_millis(500),
        "{:?}",
        env.cloud.calls()
    );
    let poked: Vec<_> = env
        .cloud
        .calls_of("poked", "a")
        .into_iter()
        .filter(|c| c.node_id == late.node_id)
        .collect();
    assert!(
        poked.iter().any(|p| p.at < late.at),
        "the instance waiting for a slot was not polled: {:?}",
        env.cloud.calls()
    );
}
