//! Order, laziness and verdicts of the `basic` checks, with a scripted network.

use super::*;
use occopus_sdk::HealthStatus;
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Default)]
struct Fake {
    /// Every call, in order (`ping h`, `tcp h:p`, `head u`, `mysql db@h:p`).
    calls: RefCell<Vec<String>>,
    ping_ok: bool,
    closed_ports: Vec<u16>,
    /// URL -> answer; a missing URL is a connection failure.
    http: HashMap<String, Result<HttpAnswer>>,
    mysql: Option<std::result::Result<LoggedIn, LoginError>>,
    denied_ping: bool,
}

impl Transport for Fake {
    fn ping(&self, host: &str, timeout_ms: u64) -> Result<ProbeResult> {
        assert_eq!(timeout_ms, PING_TIMEOUT_MS);
        self.calls.borrow_mut().push(format!("ping {host}"));
        if self.denied_ping {
            return Err(PluginError::denied("capability `ping` is not granted"));
        }
        Ok(ProbeResult {
            ok: self.ping_ok,
            latency_ms: 3,
            error: (!self.ping_ok).then(|| "host unreachable".into()),
        })
    }
    fn tcp_connect(&self, host: &str, port: u16, _t: u64) -> Result<ProbeResult> {
        self.calls.borrow_mut().push(format!("tcp {host}:{port}"));
        let ok = !self.closed_ports.contains(&port);
        Ok(ProbeResult {
            ok,
            latency_ms: 1,
            error: (!ok).then(|| "connection refused".into()),
        })
    }
    fn head(&self, url: &str, timeout_ms: u64) -> Result<HttpAnswer> {
        assert_eq!(timeout_ms, URL_TIMEOUT_MS);
        self.calls.borrow_mut().push(format!("head {url}"));
        self.http
            .get(url)
            .cloned()
            .unwrap_or_else(|| Err(PluginError::transient("connection refused")))
    }
    fn mysql_login(
        &self,
        host: &str,
        port: u16,
        db: &MysqlDb,
        _t: u64,
    ) -> std::result::Result<LoggedIn, LoginError> {
        self.calls
            .borrow_mut()
            .push(format!("mysql {}@{host}:{port}", db.name));
        self.mysql
            .clone()
            .unwrap_or_else(|| Err(LoginError::Io("refused".into())))
    }
}

fn answer(status: u16, location: Option<&str>) -> Result<HttpAnswer> {
    Ok(HttpAnswer {
        status,
        location: location.map(str::to_string),
    })
}

fn at(ip: &str) -> Addresses {
    Addresses::single(ip)
}

fn section(v: serde_json::Value) -> BasicSection {
    BasicSection::parse(&v).unwrap()
}

fn healthy() -> Fake {
    Fake {
        ping_ok: true,
        mysql: Some(Ok(LoggedIn {
            server_version: "10.11.6-MariaDB".into(),
            plugin: "mysql_native_password".into(),
        })),
        http: [("http://10.1.2.3/".to_string(), answer(200, None))].into(),
        ..Fake::default()
    }
}

const FULL: &str = r#"{"type": "basic", "ports": [22, 80], "urls": ["http://10.1.2.3/"],
    "mysqldbs": [{"name": "wp", "user": "wp", "pass": "pw"}]}"#;

#[test]
fn all_checks_run_in_occopus_order_when_healthy() {
    let t = healthy();
    let s = section(serde_json::from_str(FULL).unwrap());
    let r = run(&s, &at("10.1.2.3"), &t).unwrap();
    assert_eq!(r.status, HealthStatus::Ready);
    assert_eq!(
        *t.calls.borrow(),
        [
            "ping 10.1.2.3",
            "tcp 10.1.2.3:22",
            "tcp 10.1.2.3:80",
            "head http://10.1.2.3/",
            "mysql wp@10.1.2.3:3306"
        ]
    );
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ping 10.1.2.3",
            "port 22",
            "port 80",
            "url http://10.1.2.3/",
            "mysql wp@10.1.2.3"
        ]
    );
    assert!(r.checks.iter().all(|c| c.ok));
    assert!(!format!("{r:?}").contains("\"pw\""));
}

#[test]
fn the_first_failure_stops_the_run() {
    let t = Fake {
        closed_ports: vec![22],
        ..healthy()
    };
    let s = section(serde_json::from_str(FULL).unwrap());
    let r = run(&s, &at("10.1.2.3"), &t).unwrap();
    assert_eq!(r.status, HealthStatus::Pending);
    assert_eq!(*t.calls.borrow(), ["ping 10.1.2.3", "tcp 10.1.2.3:22"]);
    assert_eq!(r.checks.len(), 2);
    assert_eq!(
        r.checks[1],
        CheckOutcome::fail("port 22", "connection refused")
    );

    let t = Fake {
        ping_ok: false,
        ..healthy()
    };
    let r = run(&s, &at("10.1.2.3"), &t).unwrap();
    assert_eq!(t.calls.borrow().len(), 1);
    assert_eq!(
        r.checks,
        [CheckOutcome::fail("ping 10.1.2.3", "host unreachable")]
    );
}

#[test]
fn ping_defaults_to_true_and_can_be_switched_off() {
    let t = healthy();
    let r = run(&section(json!({})), &at("10.1.2.3"), &t).unwrap();
    assert_eq!(r.status, HealthStatus::Ready);
    assert_eq!(*t.calls.borrow(), ["ping 10.1.2.3"]);

    let t = healthy();
    let r = run(&section(json!({"ping": false})), &Addresses::none(), &t).unwrap();
    assert_eq!(r.status, HealthStatus::Ready);
    assert!(r.checks.is_empty());
    assert!(t.calls.borrow().is_empty());
}

#[test]
fn a_node_without_address_is_pending() {
    let t = healthy();
    let r = run(&section(json!({"ports": [22]})), &Addresses::none(), &t).unwrap();
    assert_eq!(r.status, HealthStatus::Pending);
    assert!(t.calls.borrow().is_empty());
}

#[test]
fn url_success_needs_2xx_after_redirects() {
    let mut t = Fake {
        ping_ok: true,
        ..Fake::default()
    };
    t.http
        .insert("http://h/".into(), answer(301, Some("/wordpress/")));
    t.http.insert(
        "http://h/wordpress/".into(),
        answer(302, Some("wp-login.php")),
    );
    t.http
        .insert("http://h/wordpress/wp-login.php".into(), answer(200, None));
    t.http.insert("http://h/missing".into(), answer(404, None));
    t.http
        .insert("http://h/loop".into(), answer(302, Some("/loop")));
    t.http.insert("http://h/bare".into(), answer(302, None));
    t.http.insert("http://h/teapot".into(), answer(500, None));
    let s = section(json!({"ping": false, "urls": ["http://h/"]}));
    let r = run(&s, &Addresses::none(), &t).unwrap();
    assert_eq!(
        r.checks,
        [CheckOutcome::pass(
            "url http://h/",
            "HTTP 200 after 2 redirects"
        )]
    );

    for (url, detail) in [
        ("http://h/missing", "HTTP 404"),
        (
            "http://h/loop",
            "more than 5 redirects (last: http://h/loop)",
        ),
        ("http://h/bare", "HTTP 302 without a usable Location header"),
        ("http://h/teapot", "HTTP 500"),
        ("http://h/down", "connection refused"),
    ] {
        let s = section(json!({"ping": false, "urls": [url]}));
        let r = run(&s, &Addresses::none(), &t).unwrap();
        assert_eq!(r.status, HealthStatus::Pending, "{url}");
        assert_eq!(r.checks[0].detail, detail, "{url}");
    }
    // The redirect loop stopped after the limit.
    let loops = t
        .calls
        .borrow()
        .iter()
        .filter(|c| *c == "head http://h/loop")
        .count();
    assert_eq!(loops, MAX_REDIRECTS + 1);
}

#[test]
fn mysql_failure_carries_the_server_message() {
    let t = Fake {
        mysql: Some(Err(LoginError::Server {
            code: 1045,
            message: "Access denied for user 'wp'@'10.0.0.1' (using password: YES)".into(),
        })),
        ..healthy()
    };
    let s =
        section(json!({"ping": false, "mysqldbs": [{"name": "wp", "user": "wp", "pass": "x"}]}));
    let r = run(&s, &at("10.1.2.3"), &t).unwrap();
    assert_eq!(r.status, HealthStatus::Pending);
    assert_eq!(
        r.checks[0].detail,
        "server error 1045: Access denied for user 'wp'@'10.0.0.1' (using password: YES)"
    );
}

#[test]
fn a_missing_grant_is_an_error_not_a_pending_check() {
    let t = Fake {
        denied_ping: true,
        ..healthy()
    };
    let e = run(&section(json!({})), &at("10.1.2.3"), &t).unwrap_err();
    assert!(matches!(e, PluginError::Denied(_)), "{e}");
}
