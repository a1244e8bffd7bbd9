//! A misbehaving plugin fails only its own call, with a clear cause, while a concurrent
//! call on a healthy plugin completes; the host carries on with fresh instances.

use crate::common::*;
use occopus_model::plugin::{CreateRequest, PluginError, PluginHost};
use occopus_runtime::{PluginGrant, Runtime};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Run `create` on the faulty fixture's type and, at the same time, on the echo fixture.
/// Returns the faulty outcome and how long it took; asserts the echo call succeeded
/// promptly.
async fn with_healthy_neighbour(
    rt: &Runtime,
    faulty_type: &str,
    section: Value,
) -> (Result<Value, PluginError>, Duration) {
    with_healthy_neighbour_req(rt, create(faulty_type, section)).await
}

async fn with_healthy_neighbour_req(
    rt: &Runtime,
    req: CreateRequest,
) -> (Result<Value, PluginError>, Duration) {
    let faulty = rt.resource_handler(&req.type_name).unwrap();
    let echo = rt.resource_handler("fixture-echo").unwrap();
    let start = Instant::now();
    let bad = async {
        let r = faulty.create(&req).await;
        (r, start.elapsed())
    };
    let good = async {
        // Let the faulty call get going first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let r = echo
            .create(&create("fixture-echo", json!({"image": "ok"})))
            .await;
        (r, t.elapsed())
    };
    let ((bad, bad_t), (good, good_t)) = tokio::join!(bad, good);
    let good = good.expect("the healthy plugin's call succeeds");
    assert_eq!(good["resource"]["image"], "ok");
    assert!(
        good_t < Duration::from_millis(1500),
        "healthy call took {good_t:?}"
    );
    (bad, bad_t)
}

fn crashed(r: Result<Value, PluginError>, plugin: &str) -> String {
    match r {
        Err(PluginError::Crashed {
            plugin: p,
            operation,
            cause,
        }) => {
            assert_eq!(p, plugin);
            assert_eq!(operation, "create");
            cause
        }
        other => panic!("expected a crash of {plugin}, got {other:?}"),
    }
}

fn one_second(name: &str) -> PluginGrant {
    let _ = name;
    PluginGrant {
        timeout_s: Some(1),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_reports_the_panic_message_and_the_plugin_recovers() {
    let (rt, _dir) = load(&["echo", "trap"]).await;
    let (r, _) = with_healthy_neighbour(&rt, "fixture-trap", json!({})).await;
    let cause = crashed(r, "fixture-trap");
    assert!(cause.contains("wasm `unreachable`"), "{cause}");
    assert!(
        cause.contains("fixture-trap: deliberate panic in create for node node-1"),
        "{cause}"
    );
    // The poisoned instance was dropped: the next call gets a fresh one.
    let trap = rt.resource_handler("fixture-trap").unwrap();
    let st = trap
        .state(&instance("fixture-trap", "node-1", json!({})))
        .await
        .unwrap();
    assert_eq!(st.status, occopus_model::status::NodeStatus::Ready);
    let again = crashed(
        trap.create(&create("fixture-trap", json!({}))).await,
        "fixture-trap",
    );
    assert!(again.contains("deliberate panic"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_within_the_budget() {
    let (rt, _dir) = load_with(&["echo", "loop"], |c| {
        c.plugins
            .insert("fixture-loop".into(), one_second("fixture-loop"));
    })
    .await;
    let (r, took) = with_healthy_neighbour(&rt, "fixture-loop", json!({})).await;
    let cause = crashed(r, "fixture-loop");
    assert!(cause.contains("exceeded its time budget of 1 s"), "{cause}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(
        took <= Duration::from_millis(1100),
        "stopped after {took:?}, more than budget + 10%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_cap() {
    let (rt, _dir) = load_with(&["echo", "membomb"], |c| {
        c.plugins.insert(
            "fixture-membomb".into(),
            PluginGrant {
                memory_mb: Some(32),
                ..Default::default()
            },
        );
    })
    .await;
    let (r, _) = with_healthy_neighbour(&rt, "fixture-membomb", json!({})).await;
    let cause = crashed(r, "fixture-membomb");
    assert!(cause.contains("hit its memory cap of 32.0 MiB"), "{cause}");
    assert!(
        cause.contains("memory allocation of"),
        "the guest's own message is quoted: {cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_outside_the_section_is_denied_by_name() {
    let (rt, _dir) = load(&["echo", "denied-http"]).await;
    let mut req = create(
        "fixture-denied-http",
        json!({"endpoint": "unix:///var/run/docker.sock"}),
    );
    req.attributes = json!({"target": "http://127.0.0.1:9/v1/x?token=s3cret"});
    let (r, _) = with_healthy_neighbour_req(&rt, req).await;
    match r {
        Err(PluginError::Denied(m)) => {
            assert_eq!(
                m,
                "http to http://127.0.0.1:9/ is not granted to plugin `fixture-denied-http`: reachable are unix:///var/run/docker.sock (from its section); the plugin does not request it (add `http:http://127.0.0.1:9` to its metadata capabilities) and the operator must grant it under plugins.fixture-denied-http.http"
            );
        }
        other => panic!("expected denied, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_is_refused() {
    let (rt, _dir) = load(&["echo", "huge-output"]).await;
    let (r, _) = with_healthy_neighbour(&rt, "fixture-huge-output", json!({})).await;
    let cause = crashed(r, "fixture-huge-output");
    assert_eq!(
        cause,
        "returned 64.0 MiB from `create`; at most 4.0 MiB is accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_past_the_budget_is_a_timeout() {
    let (rt, _dir) = load_with(&["echo", "sleepy"], |c| {
        c.plugins
            .insert("fixture-sleepy".into(), one_second("fixture-sleepy"));
    })
    .await;
    let (r, took) = with_healthy_neighbour(&rt, "fixture-sleepy", json!({})).await;
    let cause = crashed(r, "fixture-sleepy");
    assert!(
        cause
            .contains("exceeded its time budget of 1 s (while waiting in host call `clock.sleep`)"),
        "{cause}"
    );
    assert!(took < Duration::from_millis(1200), "{took:?}");
    // A short sleep within budget is fine and really sleeps.
    let rh = rt.resource_handler("fixture-sleepy").unwrap();
    let v = rh
        .create(&create("fixture-sleepy", json!({"sleep_ms": 30})))
        .await
        .unwrap();
    assert!(v["slept_ms"].as_u64().unwrap() >= 29, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_queues_calls() {
    let (rt, _dir) = load_with(&["sleepy"], |c| {
        c.plugins.insert(
            "fixture-sleepy".into(),
            PluginGrant {
                max_instances: Some(1),
                ..Default::default()
            },
        );
    })
    .await;
    let rh = rt.resource_handler("fixture-sleepy").unwrap();
    let req = create("fixture-sleepy", json!({"sleep_ms": 200}));
    let start = Instant::now();
    let (a, b) = tokio::join!(rh.create(&req), rh.create(&req));
    a.unwrap();
    b.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "one instance serves one call at a time: {:?}",
        start.elapsed()
    );
}

/// A plugin has no filesystem, no environment, no arguments and no sockets of its own:
/// every attempt fails or comes back empty, even towards a listener on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_sees_no_files_no_environment_and_no_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (rt, _dir) = load(&["snoop"]).await;
    let snoop = rt.resource_handler("fixture-snoop").unwrap();
    let out = snoop
        .create(&create(
            "fixture-snoop",
            json!({"connect": format!("127.0.0.1:{port}")}),
        ))
        .await
        .expect("create returns its report");
    for key in [
        "read_passwd",
        "read_relative",
        "list_root",
        "write_tmp",
        "env_home",
        "tcp_connect",
    ] {
        let v = out[key].as_str().unwrap_or_else(|| panic!("{key}: {out}"));
        assert!(v.starts_with("error: "), "{key} must fail: {v}");
    }
    assert_eq!(out["env_vars"], 0, "{out}");
    // WASI's working directory is a name inside the (empty) sandbox, never the host's.
    let host_cwd = std::env::current_dir().unwrap().display().to_string();
    assert!(
        !out["cwd"].as_str().unwrap_or("").contains(&host_cwd),
        "{out}"
    );
    assert_eq!(out["args"], 0, "{out}");
    assert!(
        !std::path::Path::new("/tmp/occopus-snoop").exists(),
        "nothing written on the host"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the listener"
    );
}
