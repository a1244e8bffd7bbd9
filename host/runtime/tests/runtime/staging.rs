//! Staged creates (`ResourceHandler::create_staged`): the guest runs ahead of its turn
//! up to its first host call and no further; nothing reaches the outside world, not even
//! a reading of the clock, before the turn; a call in turn takes a staged call's instance
//! back; dropping a staged call leaves nothing behind.

use crate::common::*;
use occopus_model::plugin::{PluginHost, Release, ResourceHandler};
use occopus_runtime::{PluginGrant, Runtime, StagingStats};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Wait (up to 10 s) until `plugin`'s staging counts satisfy `ok`.
async fn staging_reaches(rt: &Runtime, plugin: &str, ok: impl Fn(StagingStats) -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = rt.staging_stats(plugin).unwrap();
        if ok(s) {
            return;
        }
        assert!(Instant::now() < until, "staging never got there: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// At most two instances of `plugin` at once (a staged call never takes the last free
/// one).
fn two_instances(rt_cfg: &mut occopus_runtime::RuntimeConfig, plugin: &str) {
    rt_cfg.plugins.insert(
        plugin.into(),
        PluginGrant {
            max_instances: Some(2),
            ..Default::default()
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_create_runs_ahead_but_sends_nothing_before_its_turn() {
    let (rt, _dir) = load(&["echo"]).await;
    let (port, seen) = http_server().await;
    let rh = rt.resource_handler("fixture-echo").unwrap();
    let req = create(
        "fixture-echo",
        json!({"image": "x", "fetch": format!("http://127.0.0.1:{port}/")}),
    );
    let turn = Release::new();
    let call = {
        let (rh, req, turn) = (rh.clone(), req.clone(), turn.clone());
        tokio::spawn(async move { rh.create_staged(&req, &turn).await })
    };
    // The guest parses its request and stops at its first host call.
    staging_reaches(&rt, "fixture-echo", |s| s.ahead == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 0, "a request went out early");
    assert!(!call.is_finished());
    turn.release();
    let v = call.await.unwrap().unwrap();
    assert_eq!(v["fetched"], json!({"status": 200, "body": "hello"}));
    assert_eq!(v["node_id"], "node-1");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    // The instance served a clean call: it is back in the pool.
    assert_eq!(rt.idle_instances("fixture-echo"), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_create_reads_the_clock_and_sleeps_only_at_its_turn() {
    let (rt, _dir) = load(&["sleepy"]).await;
    let rh = rt.resource_handler("fixture-sleepy").unwrap();
    let req = create("fixture-sleepy", json!({"sleep_ms": 200}));
    let turn = Release::new();
    let call = {
        let (rh, req, turn) = (rh.clone(), req.clone(), turn.clone());
        tokio::spawn(async move { rh.create_staged(&req, &turn).await })
    };
    staging_reaches(&rt, "fixture-sleepy", |s| s.ahead == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "it slept before its turn");
    let released = Instant::now();
    turn.release();
    let v = call.await.unwrap().unwrap();
    // The plugin read the clock before and after its sleep: both after the release.
    let slept = v["slept_ms"].as_u64().unwrap();
    assert!((200..300).contains(&slept), "{v}");
    assert!(released.elapsed() >= Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_turn_takes_the_instance_of_a_staged_one() {
    let (rt, _dir) = load_with(&["sleepy"], |c| two_instances(c, "fixture-sleepy")).await;
    let rh = rt.resource_handler("fixture-sleepy").unwrap();
    let turn = Release::new();
    let staged = {
        let (rh, turn) = (rh.clone(), turn.clone());
        let req = create("fixture-sleepy", json!({"sleep_ms": 10}));
        tokio::spawn(async move { rh.create_staged(&req, &turn).await })
    };
    staging_reaches(&rt, "fixture-sleepy", |s| s.ahead == 1).await;
    // One of the two instances is parked with the staged call; two calls in turn must
    // not wait for that call's turn: the second takes its instance.
    let t = Instant::now();
    let call = |ms: u64| {
        let rh = rh.clone();
        async move {
            rh.create(&create("fixture-sleepy", json!({"sleep_ms": ms})))
                .await
        }
    };
    let (a, b) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(call(300), call(300))
    })
    .await
    .expect("a call in turn waited behind the staged one");
    a.unwrap();
    b.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(590),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(rt.staging_stats("fixture-sleepy").unwrap().evicted, 1);
    // The evicted call did nothing; at its turn it is made from the start.
    turn.release();
    let v = staged.await.unwrap().unwrap();
    assert!(v["slept_ms"].as_u64().is_some(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_staged_create_leaves_nothing_behind() {
    let (rt, _dir) = load_with(&["echo"], |c| two_instances(c, "fixture-echo")).await;
    let (port, seen) = http_server().await;
    let rh = rt.resource_handler("fixture-echo").unwrap();
    let req = create(
        "fixture-echo",
        json!({"image": "x", "fetch": format!("http://127.0.0.1:{port}/")}),
    );
    let stage = |turn: &Release| {
        let (rh, req, turn) = (rh.clone(), req.clone(), turn.clone());
        tokio::spawn(async move { rh.create_staged(&req, &turn).await })
    };
    let turn = Release::new();
    let call = stage(&turn);
    staging_reaches(&rt, "fixture-echo", |s| s.ahead == 1).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    // Released after the drop: nothing happens.
    turn.release();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    // Its instance was discarded (it stopped mid-call) and its slot given back: both
    // slots are free, so a new staged call runs ahead again (it never takes the last).
    assert_eq!(rt.idle_instances("fixture-echo"), Some(0));
    let turn = Release::new();
    let again = stage(&turn);
    staging_reaches(&rt, "fixture-echo", |s| s.ahead == 2).await;
    turn.release();
    let v = again.await.unwrap().unwrap();
    assert_eq!(v["fetched"]["body"], "hello");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_create_that_fails_its_schema_answers_only_at_its_turn() {
    let (rt, _dir) = load(&["echo"]).await;
    let rh = rt.resource_handler("fixture-echo").unwrap();
    // `image` is required by the schema: the host rejects the section without calling
    // the plugin, but not before the turn.
    let req = create("fixture-echo", json!({"count": 2}));
    let turn = Release::new();
    let call = {
        let (rh, req, turn) = (rh.clone(), req.clone(), turn.clone());
        tokio::spawn(async move { rh.create_staged(&req, &turn).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!call.is_finished());
    turn.release();
    let e = call.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("image"), "{e}");
    assert_eq!(rt.staging_stats("fixture-echo").unwrap().ahead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_without_a_free_instance_waits_for_the_turn() {
    let (rt, _dir) = load_with(&["sleepy"], |c| two_instances(c, "fixture-sleepy")).await;
    let rh: Arc<dyn ResourceHandler> = rt.resource_handler("fixture-sleepy").unwrap();
    // A call in turn holds one of the two instances; the other is the last free one,
    // which a staged call leaves to calls in turn.
    let busy = {
        let rh = rh.clone();
        tokio::spawn(async move {
            rh.create(&create("fixture-sleepy", json!({"sleep_ms": 300})))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let turn = Release::new();
    let staged = {
        let (rh, turn) = (rh.clone(), turn.clone());
        let req = create("fixture-sleepy", json!({"sleep_ms": 10}));
        tokio::spawn(async move { rh.create_staged(&req, &turn).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    busy.await.unwrap().unwrap();
    // It did not run ahead (only the last slot was free when it was staged), and waits.
    assert_eq!(rt.staging_stats("fixture-sleepy").unwrap().ahead, 0);
    assert!(!staged.is_finished());
    turn.release();
    staged.await.unwrap().unwrap();
}
