//! Plans and updates: desired description vs recorded state.

mod support;

use occopus_engine::BuildOptions;
use occopus_model::plan::DropReason;
use occopus_model::{Action, InfraId};
use support::*;

fn update(id: &InfraId) -> BuildOptions {
    BuildOptions {
        infra_id: Some(id.clone()),
        ..BuildOptions::default()
    }
}

#[tokio::test]
async fn a_new_plan_creates_in_dependency_order_and_prints_one_line_per_action() {
    let env = Env::new();
    let desc = infra(vec![node("web", 2, 3), node("db", 1, 1)], &[("web", "db")]);
    let plan = env.engine.plan(&desc, None).await.unwrap();
    let lines: Vec<String> = plan
        .to_string()
        .lines()
        .map(|l| {
            // Node ids are random: keep the shape.
            let mut w: Vec<&str> = l.split(' ').filter(|s| !s.is_empty()).collect();
            w[3] = "<id>";
            w.join(" ")
        })
        .collect();
    assert_eq!(
        lines,
        [
            "+ create db <id>",
            "+ create web <id> after db",
            "+ create web <id> after db"
        ]
    );
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["actions"][1]["action"], "create");
    assert!(env.cloud.calls().is_empty(), "plan calls no plugin");
    assert!(
        env.engine.list().await.unwrap().is_empty(),
        "plan writes nothing"
    );
}

#[tokio::test]
async fn updates_drop_removed_nodes_and_reapply_scaling() {
    let env = Env::new();
    let v1 = infra(
        vec![node("db", 1, 1), node("web", 1, 5), node("cache", 1, 1)],
        &[("web", "db"), ("cache", "db")],
    );
    let id = env.build(&v1).await.infra_id;
    let noop = env.engine.plan(&v1, Some(&id)).await.unwrap();
    assert!(noop.is_noop(), "{noop}");
    assert_eq!(noop.keeps(), 3);

    // cache removed, web scaled to min 3.
    let v2 = infra(vec![node("db", 1, 1), node("web", 3, 5)], &[("web", "db")]);
    let calls_before = env.cloud.calls().len();
    let plan = env.engine.plan(&v2, Some(&id)).await.unwrap();
    assert_eq!(
        env.cloud.calls().len(),
        calls_before,
        "plan calls no plugin"
    );
    assert!(
        matches!(&plan.actions[0], Action::Drop { node, reason: DropReason::Removed, .. } if node.as_str() == "cache")
    );
    assert_eq!(
        (plan.drops(), plan.creates(), plan.keeps()),
        (1, 2, 2),
        "{plan}"
    );
    let r = env.try_build(&v2, update(&id)).await.unwrap();
    assert_eq!(r.plan.creates(), 2);
    let alive = env.cloud.alive();
    let count = |n: &str| alive.iter().filter(|(node, _)| node == n).count();
    assert_eq!((count("db"), count("web"), count("cache")), (1, 3, 0));

    // More than max: the youngest go.
    let st = env.engine.recorded(&id).await.unwrap().unwrap();
    let oldest_web = st
        .instances
        .iter()
        .filter(|i| i.node_name.as_str() == "web")
        .min_by_key(|i| i.created_at_ms)
        .unwrap()
        .node_id
        .clone();
    let v3 = infra(vec![node("db", 1, 1), node("web", 1, 1)], &[("web", "db")]);
    let plan = env.engine.plan(&v3, Some(&id)).await.unwrap();
    assert_eq!(plan.drops(), 2);
    assert!(
        plan.actions
            .iter()
            .all(|a| !matches!(a, Action::Drop { node_id, .. } if *node_id == oldest_web))
    );
    assert!(
        plan.to_string()
            .contains("(above the node's scaling maximum)"),
        "{plan}"
    );
    env.try_build(&v3, update(&id)).await.unwrap();
    let alive = env.cloud.alive();
    assert_eq!(alive.len(), 2);
    assert!(alive.iter().any(|(_, nid)| nid == oldest_web.as_str()));
    let st = env.engine.recorded(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 2);
    assert_eq!(
        *st.meta.unwrap().infra,
        v3,
        "the state holds the new description"
    );
}

#[tokio::test]
async fn an_update_that_fails_drops_only_what_it_created() {
    let env = Env::new();
    let v1 = infra(vec![node("db", 1, 1)], &[]);
    let id = env.build(&v1).await.infra_id;
    env.cloud.set(
        "web",
        Behaviour {
            resource_fails: Some("no capacity".into()),
            ..Behaviour::default()
        },
    );
    let v2 = infra(
        vec![node("db", 1, 1), node("web", 1, 1), node("api", 2, 2)],
        &[("web", "db")],
    );
    let err = env.try_build(&v2, update(&id)).await.unwrap_err();
    assert!(err.to_string().contains("no capacity"), "{err}");
    let alive = env.cloud.alive();
    assert_eq!(alive.len(), 1, "{alive:?}");
    assert_eq!(alive[0].0, "db");
    let st = env.engine.recorded(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 1, "the infrastructure itself stays");
}
