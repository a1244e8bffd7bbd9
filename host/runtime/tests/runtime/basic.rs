//! The built-in `basic` health checker, loaded from a fresh `--plugin-dir`, passing and
//! failing against real listeners this test starts: TCP ports, HTTP URLs, and a MariaDB
//! login (`mysqldbs`) against the server `scripts/testenv.sh up mysql` runs.
//!
//! Occopus's `mysqldbs` always uses port 3306 of the node, and the test server listens on
//! a free port of 127.0.0.1; so the test plays the node: it forwards `127.0.0.N:3306` to
//! the server and hands the checker `127.0.0.N` as the node's address.

use crate::common::*;
use crate::fixtures;
use occopus_model::instance::Addresses;
use occopus_model::plugin::{HealthChecker, HealthReport, HealthRequest, HealthStatus, PluginHost};
use occopus_runtime::Runtime;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn basic() -> (Runtime, Arc<dyn HealthChecker>, tempfile::TempDir) {
    let dir = fixtures::builtin_dir(&["basic"]);
    let rt = Runtime::load(config(dir.path()))
        .await
        .expect("runtime starts");
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    let hc = rt
        .health_checker("basic")
        .expect("`basic` is routed to the basic plugin");
    (rt, hc, dir)
}

fn request(section: Value, address: &str) -> HealthRequest {
    HealthRequest {
        node: node("node-1"),
        type_name: "basic".into(),
        section,
        addresses: Addresses {
            primary: Some(address.into()),
            private: None,
            all: vec![address.into()],
        },
    }
}

async fn check(hc: &Arc<dyn HealthChecker>, section: Value, address: &str) -> HealthReport {
    hc.check(&request(section, address))
        .await
        .expect("the check runs")
}

/// An HTTP server on 127.0.0.1 answering every request with `status` (and `location`).
async fn http_server(status: u16, location: Option<String>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let loc = location
                    .map(|l| format!("location: {l}\r\n"))
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 {status} X\r\n{loc}content-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(head.as_bytes()).await;
            });
        }
    });
    port
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_pass_and_fail_against_real_listeners() {
    let (_rt, hc, _dir) = basic().await;
    let open = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed = closed_port().await;

    let rep = check(
        &hc,
        json!({"ping": false, "ports": [open_port]}),
        "127.0.0.1",
    )
    .await;
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");
    assert_eq!(rep.checks.len(), 1);
    assert_eq!(rep.checks[0].name, format!("port {open_port}"));

    // Occopus's order and laziness: the closed port fails and stops the run.
    let rep = check(
        &hc,
        json!({"ping": false, "ports": [closed, open_port]}),
        "127.0.0.1",
    )
    .await;
    assert_eq!(rep.status, HealthStatus::Pending, "{rep:?}");
    assert_eq!(rep.checks.len(), 1, "{rep:?}");
    assert!(!rep.checks[0].ok);
    assert!(
        rep.checks[0].detail.to_lowercase().contains("refused"),
        "{rep:?}"
    );

    // Ping of the node (loopback answers) comes first.
    let rep = check(&hc, json!({"ports": [open_port]}), "127.0.0.1").await;
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");
    assert_eq!(rep.checks[0].name, "ping 127.0.0.1");
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_pass_on_2xx_after_redirects_and_fail_otherwise() {
    let (_rt, hc, _dir) = basic().await;
    let ok = http_server(200, None).await;
    let moved = http_server(302, Some(format!("http://127.0.0.1:{ok}/landing"))).await;
    let broken = http_server(503, None).await;
    let closed = closed_port().await;

    let rep = check(
        &hc,
        json!({"ping": false, "urls": [format!("http://127.0.0.1:{ok}/")]}),
        "127.0.0.1",
    )
    .await;
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");
    assert_eq!(rep.checks[0].detail, "HTTP 200");

    let rep = check(
        &hc,
        json!({"ping": false, "urls": [format!("http://127.0.0.1:{moved}/")]}),
        "127.0.0.1",
    )
    .await;
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");
    assert_eq!(rep.checks[0].detail, "HTTP 200 after 1 redirect");

    let rep = check(
        &hc,
        json!({"ping": false, "urls": [format!("http://127.0.0.1:{broken}/")]}),
        "127.0.0.1",
    )
    .await;
    assert_eq!(rep.status, HealthStatus::Pending, "{rep:?}");
    assert_eq!(rep.checks[0].detail, "HTTP 503");

    let rep = check(
        &hc,
        json!({"ping": false, "urls": [format!("http://127.0.0.1:{closed}/")]}),
        "127.0.0.1",
    )
    .await;
    assert_eq!(rep.status, HealthStatus::Pending, "{rep:?}");
    assert!(rep.checks[0].detail.contains("cannot connect"), "{rep:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_section_is_checked_before_the_plugin_runs() {
    let (rt, hc, _dir) = basic().await;
    let errs = rt
        .check_section(
            occopus_model::plugin::PluginKind::HealthChecker,
            "basic",
            &json!({"port": [80]}),
            false,
        )
        .unwrap();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].message,
        "unknown field `port`; did you mean `ports`?"
    );
    let e = hc
        .validate("basic", &json!({"ports": [0]}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at `/ports/0`"), "{e}");
}

/// The MariaDB from `scripts/testenv.sh up mysql`, or `None` when the operator opted out
/// with `OCCOPUS_SKIP_MYSQL_TESTS=1`. Without the env file the test fails, saying how to
/// start the server.
fn mysql_env() -> Option<BTreeMap<String, String>> {
    let skip = std::env::var("OCCOPUS_SKIP_MYSQL_TESTS").is_ok_and(|v| v == "1");
    let file = std::env::var_os("OCCOPUS_TESTENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures::target_dir().join("testenv"))
        .join("env");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if skip => {
            eprintln!(
                "skipping the MariaDB test (OCCOPUS_SKIP_MYSQL_TESTS=1; {}: {e})",
                file.display()
            );
            return None;
        }
        Err(e) => panic!(
            "no test MariaDB: cannot read {}: {e}. Run `scripts/testenv.sh up mysql` first (or set OCCOPUS_SKIP_MYSQL_TESTS=1 to skip this test)",
            file.display()
        ),
    };
    let env: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let missing: Vec<&str> = ["HOST", "PORT", "USER", "PASS", "DB"]
        .into_iter()
        .filter(|k| !env.contains_key(&format!("OCCOPUS_TEST_MYSQL_{k}")))
        .collect();
    if !missing.is_empty() {
        if skip {
            return None;
        }
        panic!(
            "{} has no OCCOPUS_TEST_MYSQL_{{{}}}: run `scripts/testenv.sh up mysql` (or set OCCOPUS_SKIP_MYSQL_TESTS=1 to skip this test)",
            file.display(),
            missing.join(",")
        );
    }
    Some(env)
}

/// Forward `127.0.0.N:3306` (the first free N from 100) to `target`; returns `127.0.0.N`.
async fn forward_3306(target: String) -> String {
    for n in 100..=250u8 {
        let ip = Ipv4Addr::new(127, 0, 0, n);
        let Ok(l) = TcpListener::bind((ip, 3306)).await else {
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        return ip.to_string();
    }
    panic!("no free 127.0.0.N:3306 to stand in for the node's MySQL port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysqldbs_logs_in_to_a_real_mariadb() {
    let Some(env) = mysql_env() else { return };
    let (_rt, hc, _dir) = basic().await;
    let var = |k: &str| env[&format!("OCCOPUS_TEST_MYSQL_{k}")].clone();
    let node_ip = forward_3306(format!("{}:{}", var("HOST"), var("PORT"))).await;
    let db = |pass: String| json!({"ping": false, "mysqldbs": [{"name": var("DB"), "user": var("USER"), "pass": pass}]});

    let rep = check(&hc, db(var("PASS")), &node_ip).await;
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");
    assert_eq!(rep.checks[0].name, format!("mysql {}@{node_ip}", var("DB")));
    assert!(
        rep.checks[0]
            .detail
            .starts_with(&format!("logged in as {}", var("USER"))),
        "{rep:?}"
    );

    let wrong = format!("{}-wrong", var("PASS"));
    let rep = check(&hc, db(wrong.clone()), &node_ip).await;
    assert_eq!(rep.status, HealthStatus::Pending, "{rep:?}");
    let detail = &rep.checks[0].detail;
    assert!(
        detail.contains("server error 1045"),
        "access denied is reported: {detail}"
    );
    assert!(
        !detail.contains(&wrong),
        "the password is not echoed: {detail}"
    );

    // No server on the node's 3306: a connection failure, not a crash.
    let rep = check(&hc, db(var("PASS")), "127.0.0.99").await;
    assert_eq!(rep.status, HealthStatus::Pending, "{rep:?}");
    assert!(
        rep.checks[0].detail.starts_with("connection failed"),
        "{rep:?}"
    );
}
