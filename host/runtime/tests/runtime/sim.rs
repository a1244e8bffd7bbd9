//! The built-in `sim` resource handler, loaded from a fresh `--plugin-dir`: the section
//! sets real (host-clock) latencies of create, readiness and destroy, failure rates and
//! fail-on-Nth-call.

use crate::common::*;
use crate::fixtures;
use occopus_model::plugin::{PluginError, PluginHost, PluginKind, ResourceHandler};
use occopus_model::status::NodeStatus;
use occopus_runtime::{PluginGrant, Runtime};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn sim(
    tweak: impl FnOnce(&mut occopus_runtime::RuntimeConfig),
) -> (Runtime, Arc<dyn ResourceHandler>, tempfile::TempDir) {
    let dir = fixtures::builtin_dir(&["sim"]);
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let rt = Runtime::load(cfg).await.expect("runtime starts");
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    let rh = rt
        .resource_handler("sim")
        .expect("`sim` is routed to the sim plugin");
    (rt, rh, dir)
}

fn section(extra: Value) -> Value {
    let mut s = json!({"type": "sim"});
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latencies_follow_the_section() {
    let (_rt, rh, _dir) = sim(|_| {}).await;
    let res = section(json!({"create_ms": 150, "ready_after_ms": 300, "destroy_ms": 100}));
    let mut req = create("sim", res.clone());
    req.node = node("lat-1");
    let t = Instant::now();
    let inst = rh.create(&req).await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(1000),
        "create took {took:?}"
    );

    let mut r = instance("sim", "lat-1", inst);
    r.resource = res;
    let st = rh.state(&r).await.unwrap();
    assert_eq!(st.status, NodeStatus::Pending, "{st:?}");
    assert!(st.message.unwrap().starts_with("starting; ready in"));
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(rh.state(&r).await.unwrap().status, NodeStatus::Ready);
    let a = rh.addresses(&r).await.unwrap();
    assert!(a.primary.as_deref().unwrap().starts_with("127."), "{a:?}");

    let t = Instant::now();
    rh.destroy(&r).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "destroy took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_rates_and_listed_nodes() {
    let (_rt, rh, _dir) = sim(|_| {}).await;
    let e = rh
        .create(&create("sim", section(json!({"fail_create": 1.0}))))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PluginError::Internal("sim: simulated create failure of node node-1 (fail_create)".into())
    );
    rh.create(&create("sim", section(json!({"fail_create": 0.0}))))
        .await
        .unwrap();

    let e = rh
        .create(&create("sim", section(json!({"fail_nodes": ["web"]}))))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("node `web` is listed in fail_nodes"),
        "{e}"
    );

    let res = section(json!({"fail_state": 1.0}));
    let inst = rh.create(&create("sim", res.clone())).await.unwrap();
    let mut r = instance("sim", "node-1", inst);
    r.resource = res;
    let st = rh.state(&r).await.unwrap();
    assert_eq!(st.status, NodeStatus::Failed);
    assert_eq!(
        st.message.as_deref(),
        Some("simulated instance failure (fail_state)")
    );

    // Transient failures are retryable and end.
    let res = section(json!({"transient_failures": 2}));
    for i in 1..=2 {
        let e = rh.create(&create("sim", res.clone())).await.unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        assert!(
            e.to_string().contains(&format!("transient error {i} of 2")),
            "{e}"
        );
    }
    rh.create(&create("sim", res)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_nth_call() {
    // One instance, so the plugin's per-instance call count is the test's.
    let (_rt, rh, _dir) = sim(|c| {
        c.plugins.insert(
            "sim".into(),
            PluginGrant {
                max_instances: Some(1),
                ..Default::default()
            },
        );
    })
    .await;
    let res = section(json!({"fail_on_call": 3}));
    rh.create(&create("sim", res.clone())).await.unwrap();
    rh.create(&create("sim", res.clone())).await.unwrap();
    let e = rh.create(&create("sim", res.clone())).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("simulated failure of create call #3"),
        "{e}"
    );
    rh.create(&create("sim", res)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sections_are_refused_with_their_field() {
    let (rt, rh, _dir) = sim(|_| {}).await;
    let errs = rt
        .check_section(
            occopus_model::plugin::PluginKind::ResourceHandler,
            "sim",
            &section(json!({"fail_create": 2})),
            false,
        )
        .unwrap();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "/fail_create");
    // The plugin's own check (ordered ranges) runs after the schema passed.
    let e = rh
        .validate("sim", &section(json!({"create_ms": [500, 100]})))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PluginError::invalid(
            "/create_ms",
            "range [500, 100] has min > max; write [100, 500]"
        )
    );
}

/// Wait (at most 10 s) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_warms_instances_within_the_grant() {
    let (rt, rh, _dir) = sim(|c| {
        c.plugins.insert(
            "sim".into(),
            PluginGrant {
                max_instances: Some(3),
                ..Default::default()
            },
        );
    })
    .await;
    let idle = || rt.idle_instances("sim").unwrap();
    assert_eq!(idle(), 0);
    rt.prepare(PluginKind::ResourceHandler, "sim", 2);
    eventually("two instances are warm", || idle() == 2).await;
    // More than the grant allows: warming stops at `max_instances`.
    rt.prepare(PluginKind::ResourceHandler, "sim", 10);
    eventually("three instances are warm", || idle() == 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(idle(), 3);
    // Already warm: nothing more is made.
    rt.prepare(PluginKind::ResourceHandler, "sim", 3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(idle(), 3);
    // Unknown types and kinds are ignored.
    rt.prepare(PluginKind::HealthChecker, "sim", 5);
    rt.prepare(PluginKind::ResourceHandler, "no-such-type", 5);

    // The warm instances serve concurrent calls, and the pool stays within the grant.
    let res = section(json!({"create_ms": 200}));
    let mut calls = tokio::task::JoinSet::new();
    let t = Instant::now();
    for i in 0..3 {
        let mut req = create("sim", res.clone());
        req.node = node(&format!("warm-{i}"));
        let rh = rh.clone();
        calls.spawn(async move { rh.create(&req).await });
    }
    for r in calls.join_all().await {
        r.unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(idle(), 3);
}
