//! Reachability: a section's own endpoints work, the node's addresses work for health
//! checkers (host probes and wasi:sockets alike), everything else is denied.

use crate::common::*;
use occopus_model::plugin::{HealthStatus, PluginError, PluginHost};
use serde_json::json;

/// An HTTP server on 127.0.0.1 answering `hello`.
async fn serve_once() -> u16 {
    http_server().await.0
}

#[tokio::test]
async fn http_to_an_endpoint_of_the_section_is_sent() {
    let (rt, _dir) = load(&["echo"]).await;
    let port = serve_once().await;
    let rh = rt.resource_handler("fixture-echo").unwrap();
    let v = rh
        .create(&create(
            "fixture-echo",
            json!({"image": "x", "fetch": format!("http://127.0.0.1:{port}/status")}),
        ))
        .await
        .unwrap();
    assert_eq!(v["fetched"], json!({"status": 200, "body": "hello"}));
    // Nothing listens on port 9 of 127.0.0.1... but it is in the section, so the host
    // tries and reports a transient connection failure.
    let e = rh
        .create(&create(
            "fixture-echo",
            json!({"image": "x", "fetch": "http://127.0.0.1:9/"}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PluginError::Transient { message, .. } if message.contains("cannot connect")),
        "{e:?}"
    );
}

#[tokio::test]
async fn health_checkers_reach_their_node_and_nothing_else() {
    let (rt, _dir) = load(&["health"]).await;
    let hc = rt.health_checker("fixture-health").unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();

    // Host probe and wasi:sockets, both to the node's own address.
    let rep = hc
        .check(&health(json!({"port": port, "socket": true}), "127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");
    assert_eq!(rep.checks.len(), 2);

    // The same address when it is not the node's: the host probe is denied...
    let e = hc
        .check(&health(
            json!({"port": port, "host": "127.0.0.1"}),
            "127.0.0.9",
        ))
        .await
        .unwrap_err();
    match e {
        PluginError::Denied(m) => assert!(
            m.starts_with(&format!("tcp to 127.0.0.1:{port} is not granted to plugin `fixture-health`: reachable are 127.0.0.9 (the node being checked)")),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // ...and so is a wasi:sockets connection.
    let rep = hc
        .check(&health(
            json!({"port": port, "host": "127.0.0.1", "socket": true, "probe": false}),
            "127.0.0.9",
        ))
        .await
        .unwrap();
    assert_eq!(rep.status, HealthStatus::Pending, "{rep:?}");
    assert!(!rep.checks[0].ok, "{rep:?}");
}
