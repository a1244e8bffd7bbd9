//! Destroy and status.

mod support;

use occopus_engine::{DestroyOptions, EngineError, NoCredentials};
use occopus_model::{InfraId, NodeStatus};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn destroy_goes_in_reverse_order_with_independent_drops_concurrent() {
    let env = Env::new();
    let mut nodes = vec![node("root", 1, 1), node("mid", 1, 1)];
    let mut edges = vec![("mid".to_string(), "root".to_string())];
    for i in 0..8 {
        let name = format!("leaf{i}");
        env.cloud.set(
            &name,
            Behaviour {
                destroy_latency: Duration::from_millis(40),
                ..Behaviour::default()
            },
        );
        nodes.push(node(&name, 1, 1));
        edges.push((name, "mid".into()));
    }
    let edges: Vec<(&str, &str)> = edges
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let desc = infra(nodes, &edges);
    let id = env.build(&desc).await.infra_id;
    let report = env.destroy(&id).await.unwrap();
    assert_eq!(report.dropped, 10);
    assert!(report.existed);
    assert!(env.cloud.alive().is_empty());
    assert_eq!(
        env.cloud.max_in_flight_drops.load(Ordering::SeqCst),
        8,
        "leaves drop together"
    );
    let at = |n: &str| env.cloud.calls_of("destroy", n)[0].at;
    for i in 0..8 {
        assert!(at(&format!("leaf{i}")) < at("mid"));
    }
    assert!(at("mid") < at("root"));
    assert!(
        env.engine.list().await.unwrap().is_empty(),
        "the state is removed"
    );
}

#[tokio::test]
async fn destroy_is_idempotent_and_unknown_infras_are_a_clear_error() {
    let env = Env::new();
    let desc = infra(vec![node("a", 2, 2)], &[]);
    let id = env.build(&desc).await.infra_id;
    // One instance vanished behind our back: destroying it is still a success.
    let (_, gone) = env.cloud.alive()[0].clone();
    env.cloud
        .resources
        .lock()
        .unwrap()
        .get_mut(&gone)
        .unwrap()
        .alive = false;
    env.destroy(&id).await.unwrap();
    let err = env.destroy(&id).await.unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)));
    assert!(
        err.to_string().contains("is not known to this state store"),
        "{err}"
    );
    let r = env
        .engine
        .destroy(
            &InfraId::new("never"),
            Arc::new(NoCredentials),
            DestroyOptions { missing_ok: true },
        )
        .await
        .unwrap();
    assert!(!r.existed);
}

#[tokio::test]
async fn a_failed_drop_keeps_the_state_so_a_retry_finishes() {
    let env = Env::new();
    let desc = infra(vec![node("a", 1, 1), node("b", 1, 1)], &[("b", "a")]);
    let id = env.build(&desc).await.infra_id;
    env.cloud.set(
        "b",
        Behaviour {
            destroy_error: Some(occopus_model::plugin::PluginError::internal("api broken")),
            ..Behaviour::default()
        },
    );
    let err = env.destroy(&id).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("could not drop 1 instance(s)"), "{msg}");
    assert!(
        msg.contains("drop: destroy: api broken; run destroy again to retry"),
        "{msg}"
    );
    let st = env.engine.recorded(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 1);
    env.cloud.set("b", Behaviour::default());
    env.destroy(&id).await.unwrap();
    assert!(env.cloud.alive().is_empty());
}

#[tokio::test]
async fn status_reports_live_states() {
    let env = Env::new();
    let desc = infra(vec![node("a", 1, 1), node("b", 2, 2)], &[("b", "a")]);
    let id = env.build(&desc).await.infra_id;
    let s = env
        .engine
        .status(&id, Arc::new(NoCredentials))
        .await
        .unwrap();
    assert_eq!(s.status, NodeStatus::Ready);
    assert_eq!(s.instances.len(), 3);
    assert!(
        s.instances
            .iter()
            .all(|i| i.health.as_deref() == Some("ok"))
    );
    assert!(s.instances.iter().all(|i| i.addresses.primary.is_some()));
    let (_, victim) = env.cloud.alive()[0].clone();
    env.cloud
        .resources
        .lock()
        .unwrap()
        .get_mut(&victim)
        .unwrap()
        .alive = false;
    let s = env
        .engine
        .status(&id, Arc::new(NoCredentials))
        .await
        .unwrap();
    assert_eq!(s.status, NodeStatus::Shutdown);
    let bad = s
        .instances
        .iter()
        .find(|i| i.node_id.as_str() == victim)
        .unwrap();
    assert_eq!(bad.resource, Some(NodeStatus::Shutdown));
    assert_eq!(bad.message.as_deref(), Some("gone"));
}
