//! The harness against real built components: the runtime's fixture plugins and the
//! built-in `sim` and `basic` (built on first use, like the runtime tests).

#[path = "../../../host/runtime/tests/support/fixtures.rs"]
mod fixtures;

use occopus_model::plugin::{HealthStatus, PluginError, PluginKind};
use occopus_model::status::NodeStatus;
use occopus_sdk_harness::{Harness, HarnessError, Options};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn scripted_http_is_answered_and_recorded() {
    let h = Harness::load(fixtures::fixture("echo")).await.unwrap();
    assert_eq!(h.info().name, "fixture-echo");
    assert_eq!(h.info().kind, PluginKind::ResourceHandler);
    h.mock()
        .respond("GET", "https://api.example.test/status", 200, "all good");

    let inst = h
        .create(json!({"image": "x", "fetch": "https://api.example.test/status"}))
        .await
        .unwrap();
    assert_eq!(inst["fetched"], json!({"status": 200, "body": "all good"}));
    assert_eq!(inst["node_id"], Harness::node().node_id.as_str());
    let sent = h.mock().requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "GET");
    assert_eq!(sent[0].url, "https://api.example.test/status");
    assert_eq!(sent[0].header("Accept"), Some("text/plain"));

    // Unscripted URLs fail like a broken network would, naming the request.
    let e = h
        .create(json!({"image": "x", "fetch": "https://api.example.test/other"}))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no scripted answer for GET https://api.example.test/other"),
        "{e}"
    );

    // The section is still checked against the plugin's schema first.
    let e = h
        .create(json!({"fetch": "https://api.example.test/status"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PluginError::InvalidConfig { message, .. } if message.contains("\"image\" is a required property")),
        "{e:?}"
    );
}

#[tokio::test]
async fn reachability_is_enforced_as_in_production() {
    let h = Harness::load(fixtures::fixture("denied-http"))
        .await
        .unwrap();
    h.mock().respond("GET", "http://127.0.0.1:9/*", 200, "");
    let e = h.create(json!({})).await.unwrap_err();
    assert!(
        matches!(&e, PluginError::Denied(m) if m.starts_with("http to http://127.0.0.1:9/ is not granted")),
        "{e:?}"
    );
    assert!(h.mock().requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn the_clock_is_fake_and_sleeps_return_at_once() {
    let h = Harness::load_with(
        fixtures::builtin("sim"),
        Options {
            now_unix_ms: 1_000_000,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let section = json!({"type": "sim", "create_ms": 600_000, "ready_after_ms": 60_000});
    let started = std::time::Instant::now();
    let inst = h.create(section.clone()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a ten-minute create took {:?}",
        started.elapsed()
    );
    assert_eq!(h.mock().slept(), vec![Duration::from_secs(600)]);
    assert_eq!(inst["created_ms"], 1_600_000);

    assert_eq!(
        h.state(section.clone(), inst.clone()).await.unwrap().status,
        NodeStatus::Pending
    );
    h.mock().set_time(1_660_000);
    assert_eq!(
        h.state(section.clone(), inst.clone()).await.unwrap().status,
        NodeStatus::Ready
    );
    let a = h.addresses(section.clone(), inst.clone()).await.unwrap();
    assert!(a.primary.unwrap().starts_with("127."));
    h.destroy(section, inst).await.unwrap();
}

#[tokio::test]
async fn health_probes_are_scripted() {
    let h = Harness::load(fixtures::builtin("basic")).await.unwrap();
    assert_eq!(h.info().kind, PluginKind::HealthChecker);
    let section = json!({"ports": [22, 80], "urls": ["http://10.0.0.5/health"]});
    h.mock().respond("HEAD", "http://10.0.0.5/health", 204, "");
    let rep = h.check(section.clone(), "10.0.0.5").await.unwrap();
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");
    let names: Vec<&str> = rep.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ping 10.0.0.5",
            "port 22",
            "port 80",
            "url http://10.0.0.5/health"
        ]
    );

    h.mock().set_reachable("10.0.0.5", false);
    let rep = h.check(section, "10.0.0.5").await.unwrap();
    assert_eq!(rep.status, HealthStatus::Pending, "{rep:?}");
    assert_eq!(rep.checks.len(), 1, "stops at the first failure: {rep:?}");
    assert_eq!(rep.checks[0].detail, "unreachable (scripted)");
}

#[tokio::test]
async fn crashes_and_refusals_are_reported() {
    let h = Harness::load(fixtures::fixture("trap")).await.unwrap();
    match h.create(json!({})).await.unwrap_err() {
        PluginError::Crashed {
            plugin,
            operation,
            cause,
        } => {
            assert_eq!(
                (plugin.as_str(), operation.as_str()),
                ("fixture-trap", "create")
            );
            assert!(cause.contains("deliberate panic in create"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    // Wrong kind: a resource handler is not a health checker.
    let e = h.check(json!({}), "127.0.0.1").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin `fixture-trap` is a resource-handler, not a health-checker"
    );

    match Harness::load(fixtures::fixture("bad-metadata")).await {
        Err(HarnessError::Refused(m)) => {
            assert!(m.starts_with("bad metadata: name `Bad Name!`"), "{m}")
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("bad metadata was accepted"),
    }
    assert!(matches!(
        Harness::load("/nonexistent/plugin.wasm").await,
        Err(HarnessError::Setup(_))
    ));
}
