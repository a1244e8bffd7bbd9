//! Capabilities and the per-call reachability policy.
//!
//! Owns: parsing the capability grammar (plugin metadata `capabilities` and the operator's
//! [`PluginGrant`]), collecting the endpoints written in a call's section and auth entry,
//! and deciding whether an HTTP request, unix socket, TCP connection, socket address or
//! ping is allowed — with a `denied` message naming what is missing.
//!
//! Rule: a target is reachable when it is an endpoint of this call's rendered section or
//! credentials, or (health checkers) an address of the node being checked, or when the
//! plugin *requests* a matching capability **and** the operator *grants* one.
//!
//! Must not: perform the IO it judges (host functions do that after asking).

use crate::config::PluginGrant;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// A host pattern: `*`, `*.example.com` or an exact name/address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPat {
    Any,
    /// Suffix including the leading dot (`.example.com`).
    Suffix(String),
    Exact(String),
}

impl HostPat {
    fn parse(s: &str) -> Result<Self, String> {
        let s = normalize_host(s);
        if s.is_empty() {
            return Err("empty host".into());
        }
        if s == "*" {
            return Ok(Self::Any);
        }
        if let Some(rest) = s.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(format!("bad wildcard host `{s}`"));
            }
            return Ok(Self::Suffix(format!(".{rest}")));
        }
        if s.contains('*') {
            return Err(format!(
                "`*` may only stand alone or start a host (`*.example.com`), not in `{s}`"
            ));
        }
        Ok(Self::Exact(s))
    }
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Suffix(sfx) => host.ends_with(sfx.as_str()),
            Self::Exact(h) => h == host,
        }
    }
}

/// A port pattern; `None` in [`HttpPattern`] means the scheme's default port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPat {
    Any,
    Exact(u16),
}

impl PortPat {
    fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Self::Any);
        }
        s.parse::<u16>()
            .map(Self::Exact)
            .map_err(|_| format!("bad port `{s}`"))
    }
    fn matches(self, port: u16) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(p) => p == port,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpPattern {
    /// `None`: any scheme (`*` alone, or `*://`).
    scheme: Option<String>,
    host: HostPat,
    port: PortPat,
}

impl HttpPattern {
    fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Self {
                scheme: None,
                host: HostPat::Any,
                port: PortPat::Any,
            });
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` is not `<scheme>://<host>[:<port>]`"))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            other => return Err(format!("scheme `{other}` is not http, https or *")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(format!("`{s}` must not have a path"));
        }
        let (host, port) = split_host_port(rest);
        let port = match (port, scheme.as_deref()) {
            (Some(p), _) => PortPat::parse(p)?,
            (None, Some("http")) => PortPat::Exact(80),
            (None, Some("https")) => PortPat::Exact(443),
            (None, _) => PortPat::Any,
        };
        Ok(Self {
            scheme,
            host: HostPat::parse(host)?,
            port,
        })
    }
    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.host.matches(host)
            && self.port.matches(port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TcpPattern {
    host: HostPat,
    port: PortPat,
}

impl TcpPattern {
    fn parse(s: &str) -> Result<Self, String> {
        let (host, port) = split_host_port(s);
        let port = port.ok_or_else(|| format!("`{s}` is not `<host>:<port>`"))?;
        Ok(Self {
            host: HostPat::parse(host)?,
            port: PortPat::parse(port)?,
        })
    }
    fn matches(&self, host: &str, port: u16) -> bool {
        self.host.matches(host) && self.port.matches(port)
    }
}

/// Split `host:port`, `[v6]:port`, `host`, `[v6]`.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, after)) = rest.split_once(']') {
            return (h, after.strip_prefix(':'));
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address has several colons: no port.
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

/// Lower-case, without IPv6 brackets or a trailing dot.
pub(crate) fn normalize_host(h: &str) -> String {
    h.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A set of capabilities: what a plugin requests, or what an operator grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilitySet {
    process: bool,
    ping: bool,
    http: Vec<HttpPattern>,
    unix: Vec<String>,
    tcp: Vec<TcpPattern>,
    /// The entries as written, prefixed (`http:https://x`), for display.
    written: Vec<String>,
}

impl CapabilitySet {
    /// Parse a plugin's requested capabilities (`process`, `ping`, `http:<url pattern>`,
    /// `unix:<path>`, `tcp:<host>:<port>`). Returns every problem found.
    pub fn parse_requested(caps: &[String]) -> Result<Self, Vec<String>> {
        let mut set = Self::default();
        let mut errors = Vec::new();
        for c in caps {
            let r = match c.split_once(':') {
                None if c == "process" => {
                    set.process = true;
                    Ok(())
                }
                None if c == "ping" => {
                    set.ping = true;
                    Ok(())
                }
                Some(("http", pat)) => HttpPattern::parse(pat).map(|p| set.http.push(p)),
                Some(("tcp", pat)) => TcpPattern::parse(pat).map(|p| set.tcp.push(p)),
                Some(("unix", path)) => unix_path(path).map(|p| set.unix.push(p)),
                _ => Err("expected `process`, `ping`, `http:<scheme>://<host>[:<port>]`, `unix:<path>` or `tcp:<host>:<port>`".into()),
            };
            match r {
                Ok(()) => set.written.push(c.clone()),
                Err(e) => errors.push(format!("capability `{c}`: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Parse an operator grant. `default_process` is the built-in default for `process`
    /// (true for the `local` plugin).
    pub fn from_grant(
        grant: Option<&PluginGrant>,
        default_process: bool,
    ) -> Result<Self, Vec<String>> {
        let mut set = Self::default();
        let mut errors = Vec::new();
        let g = grant.cloned().unwrap_or_default();
        set.process = g.process.unwrap_or(default_process);
        set.ping = g.ping.unwrap_or(false);
        if set.process {
            set.written.push("process".into());
        }
        if set.ping {
            set.written.push("ping".into());
        }
        for h in &g.http {
            match HttpPattern::parse(h) {
                Ok(p) => {
                    set.http.push(p);
                    set.written.push(format!("http:{h}"));
                }
                Err(e) => errors.push(format!("http grant `{h}`: {e}")),
            }
        }
        for t in &g.tcp {
            match TcpPattern::parse(t) {
                Ok(p) => {
                    set.tcp.push(p);
                    set.written.push(format!("tcp:{t}"));
                }
                Err(e) => errors.push(format!("tcp grant `{t}`: {e}")),
            }
        }
        for u in &g.unix {
            match unix_path(u) {
                Ok(p) => {
                    set.unix.push(p);
                    set.written.push(format!("unix:{u}"));
                }
                Err(e) => errors.push(format!("unix grant `{u}`: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The entries as written.
    pub fn entries(&self) -> &[String] {
        &self.written
    }

    fn http_allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.http.iter().any(|p| p.matches(scheme, host, port))
    }
    fn tcp_allows(&self, host: &str, port: u16) -> bool {
        self.tcp.iter().any(|p| p.matches(host, port))
    }
    fn unix_allows(&self, path: &str) -> bool {
        self.unix.iter().any(|p| p == path)
    }
}

fn unix_path(p: &str) -> Result<String, String> {
    let p = p.strip_prefix("//").unwrap_or(p);
    if Path::new(p).is_absolute() {
        Ok(p.to_string())
    } else {
        Err(format!("`{p}` is not an absolute socket path"))
    }
}

/// A plugin's capabilities: what it requests and what the operator grants. A capability
/// is effective only when both sides cover it.
#[derive(Debug, Clone)]
pub struct Grants {
    plugin: String,
    requested: CapabilitySet,
    granted: CapabilitySet,
}

impl Grants {
    pub fn new(
        plugin: impl Into<String>,
        requested: CapabilitySet,
        granted: CapabilitySet,
    ) -> Self {
        Self {
            plugin: plugin.into(),
            requested,
            granted,
        }
    }
    /// Everything, for test harnesses: the plugin's requests are all granted.
    pub fn all_requested(plugin: impl Into<String>, requested: CapabilitySet) -> Self {
        let granted = requested.clone();
        Self::new(plugin, requested, granted)
    }
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
    pub fn requested(&self) -> &CapabilitySet {
        &self.requested
    }
    pub fn granted(&self) -> &CapabilitySet {
        &self.granted
    }
    /// The `process` capability is effective.
    pub fn process(&self) -> bool {
        self.requested.process && self.granted.process
    }
    /// The `ping` capability (to any host) is effective.
    pub fn ping(&self) -> bool {
        self.requested.ping && self.granted.ping
    }
    /// Effective capabilities, for `plugins list`: requested entries the grant covers.
    pub fn effective(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.process() {
            out.push("process".to_string());
        }
        if self.ping() {
            out.push("ping".to_string());
        }
        if !self.requested.http.is_empty() {
            out.extend(
                self.granted
                    .written
                    .iter()
                    .filter(|w| w.starts_with("http:"))
                    .cloned(),
            );
        }
        if !self.requested.tcp.is_empty() {
            out.extend(
                self.granted
                    .written
                    .iter()
                    .filter(|w| w.starts_with("tcp:"))
                    .cloned(),
            );
        }
        for u in &self.requested.unix {
            if self.granted.unix_allows(u) {
                out.push(format!("unix:{u}"));
            }
        }
        out
    }
}

/// Something a call's own section or credentials name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Net {
        host: String,
        port: u16,
        written: String,
    },
    Unix(String),
}

/// What one call may reach: the plugin's grants plus this call's own endpoints.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    grants: std::sync::Arc<Grants>,
    endpoints: Vec<Endpoint>,
    /// Addresses of the node a health checker checks (any port).
    node_hosts: Vec<String>,
}

/// Cap on how many strings of a section are inspected for endpoints.
const MAX_SCANNED_STRINGS: usize = 10_000;

impl CallPolicy {
    /// A policy with only the plugin's grants (no section endpoints).
    pub fn new(grants: std::sync::Arc<Grants>) -> Self {
        Self {
            grants,
            endpoints: Vec::new(),
            node_hosts: Vec::new(),
        }
    }

    /// Add every http(s)/tcp URL and `unix://` path found in string values of `doc`.
    pub fn with_endpoints_from(mut self, doc: &Value) -> Self {
        let mut budget = MAX_SCANNED_STRINGS;
        scan(doc, &mut self.endpoints, &mut budget);
        self
    }

    /// Allow every port of these hosts (the node a health checker checks).
    pub fn with_node_hosts<'a>(mut self, hosts: impl IntoIterator<Item = &'a str>) -> Self {
        for h in hosts {
            let h = normalize_host(h);
            if !h.is_empty() && !self.node_hosts.contains(&h) {
                self.node_hosts.push(h);
            }
        }
        self
    }

    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    fn endpoint_net(&self, host: &str, port: Option<u16>) -> bool {
        self.node_hosts.iter().any(|h| h == host)
            || self.endpoints.iter().any(|e| match e {
                Endpoint::Net {
                    host: h, port: p, ..
                } => h == host && port.is_none_or(|port| *p == port),
                Endpoint::Unix(_) => false,
            })
    }

    /// May this call send HTTP to `url` (already parsed)?
    pub fn check_http(&self, url: &url::Url) -> Result<(), String> {
        let scheme = url.scheme();
        let host = normalize_host(url.host_str().unwrap_or_default());
        let port = url.port_or_known_default().unwrap_or(0);
        if self.endpoint_net(&host, Some(port)) {
            return Ok(());
        }
        let g = &self.grants;
        if g.requested.http_allows(scheme, &host, port)
            && g.granted.http_allows(scheme, &host, port)
        {
            return Ok(());
        }
        let target = format!("{scheme}://{}:{port}/", url.host_str().unwrap_or_default());
        Err(self.denied(
            &format!("http to {target}"),
            "http",
            g.requested.http_allows(scheme, &host, port),
            &format!("http:{scheme}://{host}:{port}"),
        ))
    }

    /// May this call speak HTTP over the unix socket at `path`?
    pub fn check_unix(&self, path: &str) -> Result<(), String> {
        if self
            .endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Unix(p) if p == path))
        {
            return Ok(());
        }
        let g = &self.grants;
        if g.requested.unix_allows(path) && g.granted.unix_allows(path) {
            return Ok(());
        }
        Err(self.denied(
            &format!("unix socket unix://{path}"),
            "unix",
            g.requested.unix_allows(path),
            &format!("unix:{path}"),
        ))
    }

    /// May this call open a TCP connection to `host:port`?
    pub fn check_tcp(&self, host: &str, port: u16) -> Result<(), String> {
        let h = normalize_host(host);
        if self.endpoint_net(&h, Some(port)) {
            return Ok(());
        }
        let g = &self.grants;
        if g.requested.tcp_allows(&h, port) && g.granted.tcp_allows(&h, port) {
            return Ok(());
        }
        Err(self.denied(
            &format!("tcp to {host}:{port}"),
            "tcp",
            g.requested.tcp_allows(&h, port),
            &format!("tcp:{h}:{port}"),
        ))
    }

    /// May this call ping `host`?
    pub fn check_ping(&self, host: &str) -> Result<(), String> {
        let h = normalize_host(host);
        if self.endpoint_net(&h, None) || self.grants.ping() {
            return Ok(());
        }
        Err(self.denied(
            &format!("ping to {host}"),
            "ping",
            self.grants.requested.ping,
            "ping",
        ))
    }

    /// May a wasi:sockets connection go to `addr`? Host names in the allow-list are
    /// resolved; `*.suffix` patterns cannot match a bare address.
    pub async fn check_socket_addr(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        let port = addr.port();
        let ip_text = normalize_host(&ip.to_string());
        if self.endpoint_net(&ip_text, Some(port)) {
            return true;
        }
        let g = &self.grants;
        if g.requested.tcp_allows(&ip_text, port) && g.granted.tcp_allows(&ip_text, port) {
            return true;
        }
        // Names: node hosts (any port), endpoints, exact tcp grants.
        for h in &self.node_hosts {
            if resolves_to(h, 0, ip).await {
                return true;
            }
        }
        for e in &self.endpoints {
            if let Endpoint::Net { host, port: p, .. } = e
                && *p == port
                && resolves_to(host, *p, ip).await
            {
                return true;
            }
        }
        for pat in &g.granted.tcp {
            if let HostPat::Exact(h) = &pat.host
                && pat.port.matches(port)
                && g.requested.tcp_allows(h, port)
                && resolves_to(h, port, ip).await
            {
                return true;
            }
        }
        false
    }

    /// A denial naming what is reachable and how to get the rest.
    fn denied(&self, what: &str, key: &str, requested: bool, capability: &str) -> String {
        let name = self.grants.plugin();
        let mut reachable: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| match e {
                Endpoint::Net { written, .. } => format!("{written} (from its section)"),
                Endpoint::Unix(p) => format!("unix://{p} (from its section)"),
            })
            .collect();
        reachable.extend(
            self.node_hosts
                .iter()
                .map(|h| format!("{h} (the node being checked)")),
        );
        reachable.extend(
            self.grants
                .effective()
                .into_iter()
                .map(|c| format!("{c} (granted)")),
        );
        let reachable = if reachable.is_empty() {
            "nothing is reachable".to_string()
        } else {
            format!("reachable are {}", reachable.join(", "))
        };
        let hint = if requested {
            format!("grant it under plugins.{name}.{key} in the operator config")
        } else {
            format!(
                "the plugin does not request it (add `{capability}` to its metadata capabilities) and the operator must grant it under plugins.{name}.{key}"
            )
        };
        format!("{what} is not granted to plugin `{name}`: {reachable}; {hint}")
    }
}

async fn resolves_to(host: &str, port: u16, ip: IpAddr) -> bool {
    if let Ok(parsed) = host.parse::<IpAddr>() {
        return parsed == ip;
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(mut addrs) => addrs.any(|a| a.ip() == ip),
        Err(_) => false,
    }
}

fn scan(v: &Value, out: &mut Vec<Endpoint>, budget: &mut usize) {
    match v {
        Value::String(s) => {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            if let Some(e) = parse_endpoint(s)
                && !out.contains(&e)
            {
                out.push(e);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| scan(x, out, budget)),
        Value::Object(o) => o.values().for_each(|x| scan(x, out, budget)),
        _ => {}
    }
}

fn parse_endpoint(s: &str) -> Option<Endpoint> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("unix://") {
        return Path::new(path)
            .is_absolute()
            .then(|| Endpoint::Unix(path.to_string()));
    }
    let scheme_end = s.find("://")?;
    let scheme = s[..scheme_end].to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "tcp") {
        return None;
    }
    let url = url::Url::parse(s).ok()?;
    let host = normalize_host(url.host_str()?);
    let port = url.port_or_known_default()?;
    Some(Endpoint::Net {
        written: format!("{scheme}://{}:{port}", url.host_str()?),
        host,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn grants(req: &[&str], grant: PluginGrant) -> Arc<Grants> {
        let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
        Arc::new(Grants::new(
            "docker",
            CapabilitySet::parse_requested(&req).unwrap(),
            CapabilitySet::from_grant(Some(&grant), false).unwrap(),
        ))
    }

    #[test]
    fn section_endpoints_are_reachable_and_nothing_else() {
        let p = CallPolicy::new(grants(&[], PluginGrant::default())).with_endpoints_from(&json!({
            "endpoint": "unix:///var/run/docker.sock",
            "nested": [{"api": "http://127.0.0.1:5000/v1"}],
            "name": "not a url"
        }));
        assert!(p.check_unix("/var/run/docker.sock").is_ok());
        assert!(
            p.check_http(&url::Url::parse("http://127.0.0.1:5000/x").unwrap())
                .is_ok()
        );
        assert!(p.check_tcp("127.0.0.1", 5000).is_ok());
        let e = p
            .check_http(&url::Url::parse("http://10.1.2.3/").unwrap())
            .unwrap_err();
        assert!(e.starts_with("http to http://10.1.2.3:80/ is not granted to plugin `docker`: reachable are unix:///var/run/docker.sock (from its section), http://127.0.0.1:5000 (from its section)"), "{e}");
        assert!(e.contains("plugins.docker.http"), "{e}");
        assert!(p.check_ping("10.1.2.3").is_err());
        assert!(p.check_ping("127.0.0.1").is_ok());
    }

    #[test]
    fn capability_needs_request_and_grant() {
        let g = PluginGrant {
            http: vec!["https://*.amazonaws.com".into()],
            ..Default::default()
        };
        let only_granted = CallPolicy::new(grants(&[], g.clone()));
        let u = url::Url::parse("https://ec2.eu-west-1.amazonaws.com/").unwrap();
        let e = only_granted.check_http(&u).unwrap_err();
        assert!(
            e.contains("does not request it (add `http:https://ec2.eu-west-1.amazonaws.com:443`"),
            "{e}"
        );
        let both = CallPolicy::new(grants(&["http:https://*.amazonaws.com"], g));
        assert!(both.check_http(&u).is_ok());
        assert!(
            both.check_http(&url::Url::parse("http://ec2.eu-west-1.amazonaws.com/").unwrap())
                .is_err()
        );
        let only_requested = CallPolicy::new(grants(
            &["http:https://*.amazonaws.com"],
            PluginGrant::default(),
        ));
        let e = only_requested.check_http(&u).unwrap_err();
        assert!(
            e.ends_with("grant it under plugins.docker.http in the operator config"),
            "{e}"
        );
    }

    #[test]
    fn node_hosts_any_port_and_tcp_patterns() {
        let g = PluginGrant {
            tcp: vec!["*:3306".into()],
            ping: Some(true),
            ..Default::default()
        };
        let p = CallPolicy::new(grants(&["tcp:*:3306", "ping"], g)).with_node_hosts(["10.0.0.7"]);
        assert!(p.check_tcp("10.0.0.7", 22).is_ok());
        assert!(p.check_tcp("db", 3306).is_ok());
        assert!(p.check_tcp("db", 3307).is_err());
        assert!(p.check_ping("anything").is_ok());
    }

    #[test]
    fn grammar_errors_are_reported() {
        let e = CapabilitySet::parse_requested(&[
            "http:ftp://x".into(),
            "bogus".into(),
            "tcp:host".into(),
        ])
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("scheme `ftp`"), "{e:?}");
        let e = CapabilitySet::from_grant(
            Some(&PluginGrant {
                http: vec!["http://a*b".into()],
                ..Default::default()
            }),
            false,
        )
        .unwrap_err();
        assert!(e[0].contains("`*` may only"), "{e:?}");
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }

    #[tokio::test]
    async fn socket_addresses_follow_the_same_rules() {
        let p = CallPolicy::new(grants(&[], PluginGrant::default()))
            .with_endpoints_from(&json!({"db": "tcp://localhost:3306"}))
            .with_node_hosts(["127.0.0.9"]);
        assert!(p.check_socket_addr("127.0.0.9:1234".parse().unwrap()).await);
        assert!(p.check_socket_addr("127.0.0.1:3306".parse().unwrap()).await);
        assert!(!p.check_socket_addr("127.0.0.1:3307".parse().unwrap()).await);
    }
}
