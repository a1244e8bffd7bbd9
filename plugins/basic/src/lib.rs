//! `basic`: Occopus's health checker. Runs, against the node's primary address and in
//! Occopus's order, stopping at the first failure: `ping` (default on; host
//! `probe.ping`), `ports` (host `probe.tcp-connect`), `urls` (HTTP `HEAD` through the host
//! `http` import, redirects followed here, success iff 2xx) and `mysqldbs` (a real MySQL
//! login over a socket: see [`mysql`]).
//!
//! Layout: [`config`] (section and schema), [`checks`] (order, laziness, verdicts, behind
//! the [`checks::Transport`] trait), [`url`], [`mysql`] and [`net`] are plain Rust and
//! unit-tested natively; this file binds the transport to the host.

pub mod checks;
pub mod config;
pub mod mysql;
pub mod net;
pub mod url;

use checks::{HttpAnswer, Transport};
use config::{BasicSection, MysqlDb};
use mysql::{LoggedIn, LoginError};
use occopus_sdk::http::Http;
use occopus_sdk::prelude::*;
use occopus_sdk::probe::{self, ProbeResult};

/// The network through the host: probes and HTTP are host imports; MySQL goes over a
/// WASI socket.
struct HostTransport;

impl Transport for HostTransport {
    fn ping(&self, host: &str, timeout_ms: u64) -> Result<ProbeResult> {
        probe::ping(host, timeout_ms)
    }
    fn tcp_connect(&self, host: &str, port: u16, timeout_ms: u64) -> Result<ProbeResult> {
        probe::tcp_connect(host, port, timeout_ms)
    }
    fn head(&self, url: &str, timeout_ms: u64) -> Result<HttpAnswer> {
        let r = Http::head(url).timeout_ms(timeout_ms).send()?;
        Ok(HttpAnswer {
            status: r.status,
            location: r.header("Location").map(str::to_string),
        })
    }
    fn mysql_login(
        &self,
        host: &str,
        port: u16,
        db: &MysqlDb,
        timeout_ms: u64,
    ) -> std::result::Result<LoggedIn, LoginError> {
        let stream = net::connect(host, port, timeout_ms)?;
        mysql::login(stream, &db.user, &db.pass, &db.name)
    }
}

/// The `basic` health checker.
#[derive(Default)]
pub struct Basic;

impl HealthChecker for Basic {
    fn metadata(&self) -> Metadata {
        // Ports, URLs and the database are on the node being checked, which a health
        // checker may always reach; ICMP needs its own grant.
        occopus_sdk::metadata!("basic")
            .handles("basic", config::schema())
            .capability("ping")
    }

    fn validate(&self, _type_name: &str, section: &Value) -> Result<()> {
        BasicSection::parse(section).map(drop)
    }

    fn check(&self, req: &HealthRequest) -> Result<HealthReport> {
        let section = BasicSection::parse(&req.section)?;
        checks::run(&section, &req.addresses, &HostTransport)
    }
}

occopus_sdk::export_health_checker!(Basic);
