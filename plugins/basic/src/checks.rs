//! The `basic` checks in Occopus's order (ping, ports, urls, mysqldbs), lazily: the run
//! stops at the first failing primitive, and the report holds one outcome per primitive
//! tried. Everything reaches the network through [`Transport`], so the order, laziness
//! and the verdicts are unit-tested with a fake.
//!
//! A failed check makes the report `pending` (the engine polls again until the section's
//! `timeout`, as Occopus does); only a capability the operator has not granted is an
//! error, since waiting cannot fix it.

use crate::config::{BasicSection, MysqlDb};
use crate::mysql::{LoggedIn, LoginError};
use crate::url;
use occopus_sdk::probe::ProbeResult;
use occopus_sdk::{Addresses, CheckOutcome, HealthReport, PluginError, Result};

/// One ICMP echo, like Occopus's `ping -c 1 -W 1`.
pub const PING_TIMEOUT_MS: u64 = 1_000;
/// TCP connect timeout (Occopus had none).
pub const PORT_TIMEOUT_MS: u64 = 5_000;
/// HTTP HEAD timeout, as in Occopus.
pub const URL_TIMEOUT_MS: u64 = 10_000;
/// Timeout of each network step of a MySQL login.
pub const MYSQL_TIMEOUT_MS: u64 = 10_000;
/// Redirects followed per URL.
pub const MAX_REDIRECTS: usize = 5;
/// MySQL's port.
pub const MYSQL_PORT: u16 = 3306;

/// An HTTP answer as far as the URL check cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// `Location` header, if any.
    pub location: Option<String>,
}

/// The network, as the checks see it.
pub trait Transport {
    /// One ICMP echo.
    fn ping(&self, host: &str, timeout_ms: u64) -> Result<ProbeResult>;
    /// A TCP connect.
    fn tcp_connect(&self, host: &str, port: u16, timeout_ms: u64) -> Result<ProbeResult>;
    /// An HTTP `HEAD` request, redirects not followed.
    fn head(&self, url: &str, timeout_ms: u64) -> Result<HttpAnswer>;
    /// Log in to a MySQL database and log out.
    fn mysql_login(
        &self,
        host: &str,
        port: u16,
        db: &MysqlDb,
        timeout_ms: u64,
    ) -> std::result::Result<LoggedIn, LoginError>;
}

/// A host error is a failed check unless it is a missing grant.
fn host_failure(e: PluginError) -> Result<String> {
    match e {
        PluginError::Denied(_) => Err(e),
        PluginError::Timeout(_) => Ok("timed out".into()),
        other => Ok(other.to_string()),
    }
}

fn probe_outcome(name: String, r: Result<ProbeResult>) -> Result<CheckOutcome> {
    Ok(match r {
        Ok(p) if p.ok => CheckOutcome::pass(name, format!("answered in {} ms", p.latency_ms)),
        Ok(p) => CheckOutcome::fail(name, p.error.unwrap_or_else(|| "no answer".into())),
        Err(e) => CheckOutcome::fail(name, host_failure(e)?),
    })
}

/// HEAD `url`, following up to [`MAX_REDIRECTS`] redirects; ok iff the final answer is
/// 2xx.
fn check_url(t: &dyn Transport, start: &str) -> Result<CheckOutcome> {
    let name = format!("url {start}");
    let mut url = start.to_string();
    for hop in 0..=MAX_REDIRECTS {
        let answer = match t.head(&url, URL_TIMEOUT_MS) {
            Ok(a) => a,
            Err(e) => {
                let why = host_failure(e)?;
                let at = if hop == 0 {
                    String::new()
                } else {
                    format!(" (at {url})")
                };
                return Ok(CheckOutcome::fail(name, format!("{why}{at}")));
            }
        };
        let via = match hop {
            0 => String::new(),
            1 => " after 1 redirect".to_string(),
            n => format!(" after {n} redirects"),
        };
        match answer.status {
            200..=299 => {
                return Ok(CheckOutcome::pass(
                    name,
                    format!("HTTP {}{via}", answer.status),
                ));
            }
            301 | 302 | 303 | 307 | 308 => {
                let Some(next) = answer
                    .location
                    .as_deref()
                    .and_then(|l| url::resolve(&url, l))
                else {
                    return Ok(CheckOutcome::fail(
                        name,
                        format!(
                            "HTTP {} without a usable Location header{via}",
                            answer.status
                        ),
                    ));
                };
                url = next;
            }
            s => return Ok(CheckOutcome::fail(name, format!("HTTP {s}{via}"))),
        }
    }
    Ok(CheckOutcome::fail(
        name,
        format!("more than {MAX_REDIRECTS} redirects (last: {url})"),
    ))
}

fn check_mysql(t: &dyn Transport, host: &str, db: &MysqlDb) -> CheckOutcome {
    let name = format!("mysql {}@{host}", db.name);
    match t.mysql_login(host, MYSQL_PORT, db, MYSQL_TIMEOUT_MS) {
        Ok(ok) => CheckOutcome::pass(
            name,
            format!(
                "logged in as {} ({}, server {})",
                db.user, ok.plugin, ok.server_version
            ),
        ),
        Err(e) => CheckOutcome::fail(name, e.to_string()),
    }
}

/// Run the checks of `section` against `addresses.primary`.
pub fn run(
    section: &BasicSection,
    addresses: &Addresses,
    t: &dyn Transport,
) -> Result<HealthReport> {
    let mut checks = Vec::new();
    let needs_address = section.ping || !section.ports.is_empty() || !section.mysqldbs.is_empty();
    let host = addresses.primary.as_deref().filter(|h| !h.is_empty());
    let host = match (host, needs_address) {
        (Some(h), _) => h,
        (None, false) => "",
        (None, true) => {
            checks.push(CheckOutcome::fail("address", "the node has no address yet"));
            return Ok(HealthReport::from_checks(checks));
        }
    };

    macro_rules! step {
        ($outcome:expr) => {{
            let outcome = $outcome;
            let ok = outcome.ok;
            checks.push(outcome);
            if !ok {
                return Ok(HealthReport::from_checks(checks));
            }
        }};
    }

    if section.ping {
        step!(probe_outcome(
            format!("ping {host}"),
            t.ping(host, PING_TIMEOUT_MS)
        )?);
    }
    for &port in &section.ports {
        step!(probe_outcome(
            format!("port {port}"),
            t.tcp_connect(host, port, PORT_TIMEOUT_MS)
        )?);
    }
    for u in &section.urls {
        step!(check_url(t, u)?);
    }
    for db in &section.mysqldbs {
        step!(check_mysql(t, host, db));
    }
    Ok(HealthReport::from_checks(checks))
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
