//! Failing builds: timeouts, deadlines, retries, rollback, keep-on-failure, skipped nodes.

mod support;

use occopus_engine::{AfterFailure, BuildOptions, NoCredentials};
use occopus_model::event::EventKind;
use occopus_model::plugin::PluginError;
use occopus_model::{InfraId, InstancePhase};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn with_id(id: &str) -> BuildOptions {
    BuildOptions {
        infra_id: Some(InfraId::new(id)),
        ..BuildOptions::default()
    }
}

/// A service that dies while its health checks are still pending fails the node at once,
/// with the resource's reason, not after the whole health timeout.
#[tokio::test]
async fn a_resource_dying_during_health_checks_fails_the_node_at_once() {
    let env = Env::new();
    let n = node("web", 1, 1);
    assert_eq!(n.implementations[0].health_check.timeout_secs, 600);
    env.cloud.set(
        "web",
        Behaviour {
            health_pending: Some(u32::MAX),
            resource_fails: Some("the service exited with code 3; last lines: boom".into()),
            fails_after_polls: 3,
            ..Behaviour::default()
        },
    );
    let t = Instant::now();
    let err = env
        .engine
        .build(
            &infra(vec![n], &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let msg = err.to_string();
    assert!(
        msg.contains("the resource is failed while its health checks were pending"),
        "{msg}"
    );
    assert!(
        msg.contains("exited with code 3; last lines: boom"),
        "{msg}"
    );
    assert!(
        !env.cloud.calls_of("health", "web").is_empty(),
        "health was polled"
    );
}

#[tokio::test]
async fn continuous_health_failure_past_the_timeout_fails_the_node() {
    let env = Env::new();
    let mut n = node("web", 1, 1);
    n.implementations[0].health_check.timeout_secs = 1;
    env.cloud.set(
        "web",
        Behaviour {
            health_pending: Some(u32::MAX),
            ..Behaviour::default()
        },
    );
    let t = Instant::now();
    let err = env
        .engine
        .build(
            &infra(vec![n], &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert!(t.elapsed() < Duration::from_secs(5));
    let msg = err.to_string();
    assert!(
        msg.contains(
            "health checks did not pass for 1s (the node's health_check timeout): port 80 on 10."
        ),
        "{msg}"
    );
    assert!(msg.contains("connection refused"), "{msg}");
    assert!(
        msg.contains("Rolled back: dropped the 1 instance(s)"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_creation_deadline_bounds_a_stuck_resource() {
    let env = Env::new();
    env.cloud.set(
        "vm",
        Behaviour {
            pending_polls: u32::MAX,
            ..Behaviour::default()
        },
    );
    let err = env
        .engine
        .build(
            &infra(vec![node("vm", 1, 1)], &[]),
            Arc::new(NoCredentials),
            BuildOptions {
                create_deadline: Some(Duration::from_millis(200)),
                ..BuildOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.failures.len(), 1);
    assert_eq!(
        err.failures[0].message,
        "not created and ready within the creation deadline of 200ms (it was waiting for the resource to be ready)"
    );
    assert!(
        env.cloud.alive().is_empty(),
        "the stuck resource was dropped"
    );
}

#[tokio::test]
async fn a_failed_build_rolls_back_in_reverse_order_and_forgets_the_infra() {
    let env = Env::new();
    let mut rx = env.engine.subscribe();
    env.cloud.set(
        "c",
        Behaviour {
            resource_fails: Some("image not found".into()),
            ..Behaviour::default()
        },
    );
    let desc = infra(
        vec![node("a", 1, 1), node("b", 2, 2), node("c", 1, 1)],
        &[("b", "a"), ("c", "b")],
    );
    let err = env.try_build(&desc, with_id("rb")).await.unwrap_err();
    assert_eq!(
        err.after,
        AfterFailure::RolledBack {
            dropped: 4,
            leaked: Vec::new()
        }
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("build of `test-infra` (infrastructure rb) failed: node `c` (instance "),
        "{msg}"
    );
    assert!(
        msg.contains("the resource is failed: image not found"),
        "{msg}"
    );
    assert!(env.cloud.alive().is_empty());
    assert!(
        env.engine.list().await.unwrap().is_empty(),
        "a failed first build leaves no state"
    );
    // Reverse order: c before b, b before a.
    let last = |n: &str| {
        env.cloud
            .calls_of("destroy", n)
            .iter()
            .map(|c| c.at)
            .max()
            .unwrap()
    };
    let first = |n: &str| {
        env.cloud
            .calls_of("destroy", n)
            .iter()
            .map(|c| c.at)
            .min()
            .unwrap()
    };
    assert!(last("c") <= first("b") && last("b") <= first("a"));
    let events = drain(&mut rx);
    match &events.last().unwrap().kind {
        EventKind::InfraFailed {
            rolled_back,
            message,
        } => {
            assert!(*rolled_back);
            assert_eq!(message, &msg);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn keep_on_failure_keeps_and_a_rebuild_replaces_the_failed_instance() {
    let env = Env::new();
    env.cloud.set(
        "b",
        Behaviour {
            resource_fails: Some("boom".into()),
            ..Behaviour::default()
        },
    );
    let desc = infra(vec![node("a", 1, 1), node("b", 1, 1)], &[("b", "a")]);
    let err = env
        .try_build(
            &desc,
            BuildOptions {
                keep_on_failure: true,
                ..with_id("keep")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.after, AfterFailure::Kept { instances: 2 });
    assert!(
        err.to_string()
            .contains("fix the cause and build again with `-i keep`"),
        "{err}"
    );
    assert_eq!(env.cloud.alive().len(), 2);
    let st = env
        .engine
        .recorded(&InfraId::new("keep"))
        .await
        .unwrap()
        .unwrap();
    let phases: Vec<_> = st
        .instances
        .iter()
        .map(|i| (i.node_name.to_string(), i.phase))
        .collect();
    assert_eq!(
        phases,
        [
            ("a".into(), InstancePhase::Ready),
            ("b".into(), InstancePhase::Failed)
        ]
    );
    let failed_id = st.instances[1].node_id.clone();

    env.cloud.set("b", Behaviour::default());
    let plan = env
        .engine
        .plan(&desc, Some(&InfraId::new("keep")))
        .await
        .unwrap();
    assert_eq!(
        (plan.drops(), plan.creates(), plan.keeps()),
        (1, 1, 1),
        "{plan}"
    );
    let r = env.try_build(&desc, with_id("keep")).await.unwrap();
    assert_eq!((r.created, r.dropped, r.kept), (1, 1, 1));
    let alive = env.cloud.alive();
    assert_eq!(alive.len(), 2);
    assert!(!alive.iter().any(|(_, id)| id == failed_id.as_str()));
}

#[tokio::test]
async fn nodes_downstream_of_a_failure_are_skipped_and_reported_once() {
    let env = Env::new();
    let mut rx = env.engine.subscribe();
    env.cloud.set(
        "a",
        Behaviour {
            create_errors: vec![PluginError::invalid("/image_id", "no such image")],
            create_latency: Duration::from_millis(50),
            ..Behaviour::default()
        },
    );
    env.cloud.set(
        "e",
        Behaviour {
            create_latency: Duration::from_millis(150),
            ..Behaviour::default()
        },
    );
    let desc = infra(
        vec![
            node("a", 1, 1),
            node("b", 1, 1),
            node("c", 1, 1),
            node("d", 1, 1),
            node("e", 1, 1),
        ],
        &[("b", "a"), ("c", "a"), ("c", "b"), ("d", "c")],
    );
    let err = env
        .try_build(&desc, BuildOptions::default())
        .await
        .unwrap_err();
    let mut skipped: Vec<_> = err.skipped.iter().map(|n| n.to_string()).collect();
    skipped.sort();
    assert_eq!(skipped, ["b", "c", "d"]);
    let events = drain(&mut rx);
    for n in ["b", "c", "d"] {
        let count = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::NodeSkipped { node, because } if node.as_str() == n && because.as_str() == "a"))
            .count();
        assert_eq!(count, 1, "{n} skipped once");
    }
    assert!(env.cloud.calls_of("create", "b").is_empty());
    // The independent in-flight node finished, then was rolled back.
    assert_eq!(env.cloud.calls_of("create", "e").len(), 1);
    assert_eq!(env.cloud.calls_of("destroy", "e").len(), 1);
    let msg = err.to_string();
    assert!(
        msg.contains("create: invalid configuration at `/image_id`: no such image"),
        "{msg}"
    );
    assert!(
        msg.contains("Not attempted because a node they depend on failed: "),
        "{msg}"
    );
}

#[tokio::test]
async fn transient_errors_are_retried_then_succeed() {
    let env = Env::new();
    let mut rx = env.engine.subscribe();
    env.cloud.set(
        "a",
        Behaviour {
            create_errors: vec![
                PluginError::Transient {
                    message: "throttled".into(),
                    retry_after_ms: Some(30),
                },
                PluginError::Timeout("slow api".into()),
            ],
            ..Behaviour::default()
        },
    );
    let t = Instant::now();
    env.engine
        .build(
            &infra(vec![node("a", 1, 1)], &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "retry_after is honoured"
    );
    assert_eq!(env.cloud.calls_of("create", "a").len(), 3);
    let retries = drain(&mut rx)
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::NodeRetry { .. }))
        .count();
    assert_eq!(retries, 2);
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let env = Env::new();
    env.cloud.set(
        "a",
        Behaviour {
            create_errors: vec![PluginError::Denied(
                "missing grant `http:cloud.example`".into(),
            )],
            ..Behaviour::default()
        },
    );
    let err = env
        .engine
        .build(
            &infra(vec![node("a", 1, 1)], &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(env.cloud.calls_of("create", "a").len(), 1);
    assert!(
        err.to_string().contains("create: denied: missing grant"),
        "{err}"
    );
}

#[tokio::test]
async fn transient_errors_give_up_after_the_configured_attempts() {
    let env = Env::new();
    env.cloud.set(
        "a",
        Behaviour {
            create_errors: (0..10).map(|_| PluginError::transient("503")).collect(),
            ..Behaviour::default()
        },
    );
    let err = env
        .engine
        .build(
            &infra(vec![node("a", 1, 1)], &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(env.cloud.calls_of("create", "a").len(), 4);
    assert!(
        err.to_string()
            .contains("create: 503 (gave up after 4 tries)"),
        "{err}"
    );
}

#[tokio::test]
async fn intents_that_cannot_be_stored_stop_the_build_before_their_nodes_start() {
    let env = Env::new();
    env.cloud.set(
        "a",
        Behaviour {
            create_latency: Duration::from_millis(20),
            ..Behaviour::default()
        },
    );
    let store = HookedStore::new(env.store.clone(), |records| {
        if has_intent_of(records, "b") {
            AppendHook::Fail(occopus_state::StateError::Io {
                op: "write",
                path: "journal-1.jsonl".into(),
                message: "No space left on device".into(),
            })
        } else {
            AppendHook::Pass
        }
    });
    let engine = occopus_engine::Engine::new(env.host.clone(), Arc::new(store), fast_options());
    let desc = infra(vec![node("a", 1, 1), node("b", 1, 1)], &[("b", "a")]);
    let err = engine
        .build(&desc, Arc::new(NoCredentials), BuildOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        env.cloud.calls_of("create", "b").is_empty(),
        "b was created without its intent"
    );
    assert_eq!(env.cloud.calls_of("create", "a").len(), 1);
    assert!(
        env.cloud.alive().is_empty(),
        "a was not rolled back: {:?}",
        env.cloud.alive()
    );
}

/// A create refused for its section leaves an instance whose outcome the record does
/// not know; the plugin refuses `find` with the same section too. Nothing can have been
/// made with a section the plugin rejects, so the rollback forgets it instead of failing
/// (before, every later destroy failed the same way).
#[tokio::test]
async fn an_instance_refused_for_its_section_is_rolled_back_and_forgotten() {
    let env = Env::new();
    let invalid = PluginError::invalid("/seed", "\"3\" is not of type \"integer\"");
    env.cloud.set(
        "web",
        Behaviour {
            create_errors: vec![invalid.clone()],
            find_error: Some(invalid),
            ..Behaviour::default()
        },
    );
    let e = env
        .try_build(
            &infra(vec![node("web", 1, 1)], &[]),
            BuildOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not of type"), "{e}");
    assert!(
        matches!(&e.after, AfterFailure::RolledBack { leaked, .. } if leaked.is_empty()),
        "{e}"
    );
    assert_eq!(env.cloud.calls_of("find", "web").len(), 1);
    let id = e.infra_id.clone().unwrap();
    assert!(
        env.engine.recorded(&id).await.unwrap().is_none(),
        "state removed"
    );
}
