//! The `docker` resource section and the `docker` contextualisation attributes: serde
//! types, the checks beyond the JSON Schema, the schema itself, and the translation of
//! the user's shorthand (ports, volumes, memory sizes, restart policies, a command
//! string) into Engine API values. Pure: no host calls.

use occopus_sdk::{PluginError, Result};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Engine used when the section names none. Not written in the section, so the sandbox
/// only lets the plugin reach it when the operator grants `unix: [/var/run/docker.sock]`.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";
/// Label keys the plugin owns; user labels may not use the prefix.
pub const LABEL_PREFIX: &str = "occopus.";
pub const LABEL_INFRA: &str = "occopus.infra-id";
pub const LABEL_NODE_NAME: &str = "occopus.node-name";
pub const LABEL_NODE_ID: &str = "occopus.node-id";
/// Default seconds between the stop signal and SIGKILL.
pub const DEFAULT_STOP_GRACE_S: u64 = 10;

/// Where the plugin speaks to the Engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// HTTP over a unix socket at this absolute path.
    Unix(String),
    /// Plain HTTP (or HTTPS) to `base` (`http://host:port`, no trailing slash).
    Net(String),
}

impl Endpoint {
    /// Parse `unix:///path`, `tcp://host:port`, `http://host:port` or `https://host:port`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "`{s}`: a unix endpoint needs an absolute path (`unix:///var/run/docker.sock`)"
                ));
            }
            return Ok(Self::Unix(path.to_string()));
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("`{s}` is not `unix:///path/to/docker.sock` or `tcp://host:port`")
        })?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" | "http" => "http",
            "https" => "https",
            other => {
                return Err(format!(
                    "`{s}`: scheme `{other}` is not unix, tcp, http or https"
                ));
            }
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(format!(
                "`{s}`: expected `{scheme}://host:port` without a path"
            ));
        }
        if !authority.contains(':') || authority.ends_with(']') {
            return Err(format!(
                "`{s}`: the Docker Engine has no default TCP port; write `host:port` (usually 2375)"
            ));
        }
        Ok(Self::Net(format!("{scheme}://{authority}")))
    }
}

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Already on the engine; never pulled.
    Local,
    /// Pulled from the engine's configured registry when missing.
    Registry,
    /// A filesystem tarball (`docker export` output, optionally compressed) the engine
    /// downloads and imports (`docker import`).
    Url(String),
}

impl Origin {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "local" => Ok(Self::Local),
            "dockerhub" | "registry" => Ok(Self::Registry),
            u if u.starts_with("http://") || u.starts_with("https://") => {
                Ok(Self::Url(u.to_string()))
            }
            other => Err(format!(
                "`{other}` is not `local`, `dockerhub` or the http(s) URL of an image tarball"
            )),
        }
    }
}

/// The rendered `resource` section of type `docker`, as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    pub origin: String,
    pub image: String,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub network: Option<bool>,
    #[serde(default)]
    pub ports: Vec<Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub memory: Option<Value>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub stop_grace_s: Option<u64>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub container: u16,
    pub protocol: String,
    /// Host address to bind (default `127.0.0.1`).
    pub host_ip: String,
    /// Host port; `None` lets the engine choose.
    pub host: Option<u16>,
}

/// A mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    /// A named volume shared by the infrastructure's containers; the engine-side name is
    /// [`volume_name`]`(infra, name)`.
    Named {
        name: String,
        target: String,
        read_only: bool,
    },
    /// A host directory.
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    /// An anonymous volume, removed with the container.
    Anonymous { target: String },
}

/// Restart policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub name: String,
    pub max_retries: u32,
}

/// A checked section.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSection {
    pub endpoint: Endpoint,
    /// The endpoint as written (or the default), for messages and instance data.
    pub endpoint_text: String,
    pub origin: Origin,
    pub image: String,
    pub tag: String,
    pub name: Option<String>,
    /// Join the per-infrastructure network (default) or stay on the engine's default
    /// bridge.
    pub network: bool,
    pub ports: Vec<Port>,
    pub labels: BTreeMap<String, String>,
    pub volumes: Vec<Volume>,
    pub memory: Option<u64>,
    pub nano_cpus: Option<u64>,
    pub restart: Option<Restart>,
    pub stop_grace_s: u64,
    pub stop_signal: Option<String>,
}

impl DockerSection {
    /// Parse and check a rendered section.
    pub fn parse(section: &Value) -> Result<Self> {
        let raw: RawSection = occopus_sdk::parse_section(section)?;
        raw.check()
    }

    /// `image:tag` (or `image@digest`).
    pub fn reference(&self) -> String {
        if self.tag.starts_with("sha256:") {
            format!("{}@{}", self.image, self.tag)
        } else {
            format!("{}:{}", self.image, self.tag)
        }
    }
}

fn bad(path: &str, msg: impl Into<String>) -> PluginError {
    PluginError::invalid(path, msg)
}

impl RawSection {
    pub fn check(self) -> Result<DockerSection> {
        if self.type_name != "docker" {
            return Err(bad(
                "/type",
                format!("expected `docker`, got `{}`", self.type_name),
            ));
        }
        let endpoint_text = self
            .endpoint
            .clone()
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let endpoint = Endpoint::parse(&endpoint_text).map_err(|m| bad("/endpoint", m))?;
        let origin = Origin::parse(&self.origin).map_err(|m| bad("/origin", m))?;
        let image = self.image.trim().to_string();
        if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c == '@') {
            return Err(bad(
                "/image",
                format!(
                    "`{}` is not an image name (`busybox`, `library/nginx`, `registry:5000/app`)",
                    self.image
                ),
            ));
        }
        let tag = self.tag.as_deref().unwrap_or("latest").trim().to_string();
        if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad("/tag", format!("`{tag}` is not an image tag")));
        }
        if let Some(n) = &self.name
            && sanitize_name(n).is_empty()
        {
            return Err(bad(
                "/name",
                "needs at least one letter or digit (it prefixes the container name)",
            ));
        }
        let ports = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| parse_port(p).map_err(|m| bad(&format!("/ports/{i}"), m)))
            .collect::<Result<Vec<_>>>()?;
        for k in self.labels.keys() {
            if k.starts_with(LABEL_PREFIX) {
                return Err(bad(
                    &format!("/labels/{k}"),
                    format!("labels starting with `{LABEL_PREFIX}` are set by Occopus"),
                ));
            }
            if k.is_empty() {
                return Err(bad("/labels", "empty label key"));
            }
        }
        let volumes = self
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| parse_volume(v).map_err(|m| bad(&format!("/volumes/{i}"), m)))
            .collect::<Result<Vec<_>>>()?;
        let memory = match &self.memory {
            None => None,
            Some(v) => Some(parse_memory(v).map_err(|m| bad("/memory", m))?),
        };
        let nano_cpus = match self.cpus {
            None => None,
            Some(c) if c.is_finite() && c > 0.0 && c <= 1024.0 => Some((c * 1e9).round() as u64),
            Some(c) => {
                return Err(bad(
                    "/cpus",
                    format!("{c} is not a positive number of CPUs"),
                ));
            }
        };
        let restart = match &self.restart {
            None => None,
            Some(r) => Some(parse_restart(r).map_err(|m| bad("/restart", m))?),
        };
        if let Some(s) = &self.stop_signal
            && (s.is_empty()
                || s.chars()
                    .any(|c| !c.is_ascii_alphanumeric() && c != '+' && c != '-'))
        {
            return Err(bad(
                "/stop_signal",
                format!("`{s}` is not a signal (`SIGTERM`, `SIGKILL`, `9`)"),
            ));
        }
        Ok(DockerSection {
            endpoint,
            endpoint_text,
            origin,
            image,
            tag,
            name: self.name,
            network: self.network.unwrap_or(true),
            ports,
            labels: self.labels,
            volumes,
            memory,
            nano_cpus,
            restart,
            stop_grace_s: self.stop_grace_s.unwrap_or(DEFAULT_STOP_GRACE_S),
            stop_signal: self.stop_signal,
        })
    }
}

/// Keep `[a-zA-Z0-9_.-]`, replace the rest with `-`, trim leading punctuation.
pub fn sanitize_name(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped
        .trim_start_matches(['_', '.', '-'])
        .chars()
        .take(64)
        .collect()
}

/// The container name of a node instance: `<name or node name>-<node id>`. Derived from
/// the node id, so a retried create finds what the first attempt made.
pub fn container_name(section_name: Option<&str>, node_name: &str, node_id: &str) -> String {
    let prefix = sanitize_name(section_name.unwrap_or(node_name));
    let id = sanitize_name(node_id);
    if prefix.is_empty() {
        format!("occopus-{id}")
    } else {
        format!("{prefix}-{id}")
    }
}

/// The per-infrastructure network's name.
pub fn network_name(infra_id: &str) -> String {
    format!("occopus-{}", sanitize_name(infra_id))
}

/// The engine-side name of an infrastructure's named volume.
pub fn volume_name(infra_id: &str, name: &str) -> String {
    format!("occopus-{}-{name}", sanitize_name(infra_id))
}

/// A DNS label for the container's hostname.
pub fn hostname(node_name: &str) -> String {
    let h: String = node_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let h = h.trim_matches('-').to_string();
    if h.is_empty() { "node".into() } else { h }
}

fn parse_u16(s: &str, what: &str) -> std::result::Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("`{s}` is not a {what} (1-65535)")),
    }
}

/// `8080`, `"8080"`, `"8080/udp"`, `"9000:8080"`, `"0.0.0.0:9000:8080"`,
/// `"127.0.0.1::8080"`, or `{container, host, host_ip, protocol}`.
pub fn parse_port(v: &Value) -> std::result::Result<Port, String> {
    let mut port = Port {
        container: 0,
        protocol: "tcp".into(),
        host_ip: "127.0.0.1".into(),
        host: None,
    };
    match v {
        Value::Number(n) => {
            let n = n
                .as_u64()
                .filter(|n| (1..=65535).contains(n))
                .ok_or_else(|| format!("{n} is not a port (1-65535)"))?;
            port.container = n as u16;
        }
        Value::String(s) => {
            let (spec, proto) = match s.rsplit_once('/') {
                Some((a, p)) => (a, p),
                None => (s.as_str(), "tcp"),
            };
            if !matches!(proto, "tcp" | "udp" | "sctp") {
                return Err(format!("`{proto}` is not tcp, udp or sctp"));
            }
            port.protocol = proto.into();
            let parts: Vec<&str> = if let Some(bracketed) = spec.strip_prefix('[') {
                // `[::1]:9000:8080`
                let (ip, rest) = bracketed
                    .split_once(']')
                    .ok_or_else(|| format!("`{s}`: unclosed `[`"))?;
                port.host_ip = ip.into();
                let rest = rest.strip_prefix(':').unwrap_or(rest);
                rest.split(':').collect::<Vec<_>>()
            } else {
                spec.split(':').collect()
            };
            match parts.as_slice() {
                [c] => port.container = parse_u16(c, "container port")?,
                [h, c] => {
                    port.container = parse_u16(c, "container port")?;
                    if !h.is_empty() {
                        port.host = Some(parse_u16(h, "host port")?);
                    }
                }
                [ip, h, c] if !spec.starts_with('[') => {
                    port.host_ip = (*ip).into();
                    port.container = parse_u16(c, "container port")?;
                    if !h.is_empty() {
                        port.host = Some(parse_u16(h, "host port")?);
                    }
                }
                _ => {
                    return Err(format!(
                        "`{s}` is not `container`, `host:container` or `ip:host:container` (optionally `/udp`)"
                    ));
                }
            }
        }
        Value::Object(o) => {
            for k in o.keys() {
                if !matches!(k.as_str(), "container" | "host" | "host_ip" | "protocol") {
                    return Err(format!(
                        "unknown key `{k}` (container, host, host_ip, protocol)"
                    ));
                }
            }
            let num = |k: &str| -> std::result::Result<Option<u16>, String> {
                match o.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .filter(|n| (1..=65535).contains(n))
                        .map(|n| Some(n as u16))
                        .ok_or_else(|| format!("`{k}`: {n} is not a port (1-65535)")),
                    Some(Value::String(s)) => parse_u16(s, k).map(Some),
                    Some(_) => Err(format!("`{k}` must be a port number")),
                }
            };
            port.container = num("container")?
                .ok_or("`container` (the port inside the container) is required")?;
            port.host = num("host")?;
            if let Some(ip) = o.get("host_ip") {
                port.host_ip = ip.as_str().ok_or("`host_ip` must be a string")?.to_string();
            }
            if let Some(p) = o.get("protocol") {
                let p = p.as_str().ok_or("`protocol` must be a string")?;
                if !matches!(p, "tcp" | "udp" | "sctp") {
                    return Err(format!("`{p}` is not tcp, udp or sctp"));
                }
                port.protocol = p.into();
            }
        }
        _ => return Err("a port is a number, a string like `9000:8080` or a mapping".into()),
    }
    if port.host_ip.is_empty()
        || !port
            .host_ip
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
    {
        return Err(format!("`{}` is not an IP address to bind", port.host_ip));
    }
    Ok(port)
}

fn volume_name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `name:/path[:ro|rw]`, `/host/dir:/path[:ro|rw]` or `/path`.
pub fn parse_volume(s: &str) -> std::result::Result<Volume, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [src, t] => (Some(*src), *t, None),
        [src, t, m] => (Some(*src), *t, Some(*m)),
        _ => {
            return Err(format!(
                "`{s}` is not `name:/path`, `/host/dir:/path` or `/path` (optionally `:ro`)"
            ));
        }
    };
    if !target.starts_with('/') {
        return Err(format!(
            "`{target}`: the path inside the container must be absolute"
        ));
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => return Err(format!("`{m}` is not `ro` or `rw`")),
    };
    Ok(match source {
        None => Volume::Anonymous {
            target: target.into(),
        },
        Some(src) if src.starts_with('/') => Volume::Bind {
            source: src.into(),
            target: target.into(),
            read_only,
        },
        Some(src) if volume_name_ok(src) => Volume::Named {
            name: src.into(),
            target: target.into(),
            read_only,
        },
        Some(src) => {
            return Err(format!(
                "`{src}` is neither a volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) nor an absolute host path"
            ));
        }
    })
}

/// Bytes, or a size with a unit: `64m`, `64MB`, `1.5g`, `512MiB`, `1048576`.
pub fn parse_memory(v: &Value) -> std::result::Result<u64, String> {
    let text = match v {
        Value::Number(n) => {
            return n
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{n} is not a positive number of bytes"));
        }
        Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => return Err("a memory limit is a number of bytes or a string like `64m`".into()),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size like `64m` or `1g`"))?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("`{u}` is not a size unit (b, k, m, g, t)")),
    };
    let bytes = num * mult as f64;
    if !(1.0..1e18).contains(&bytes) {
        return Err(format!("`{text}` is not a positive size"));
    }
    Ok(bytes as u64)
}

/// `no`, `always`, `unless-stopped`, `on-failure`, `on-failure:N`.
pub fn parse_restart(s: &str) -> std::result::Result<Restart, String> {
    let (name, n) = match s.split_once(':') {
        Some((name, n)) => (name, Some(n)),
        None => (s, None),
    };
    match (name, n) {
        ("no" | "always" | "unless-stopped", None) => Ok(Restart {
            name: name.into(),
            max_retries: 0,
        }),
        ("on-failure", None) => Ok(Restart {
            name: name.into(),
            max_retries: 0,
        }),
        ("on-failure", Some(n)) => Ok(Restart {
            name: name.into(),
            max_retries: n
                .parse()
                .map_err(|_| format!("`{n}` is not a retry count"))?,
        }),
        _ => Err(format!(
            "`{s}` is not `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`"
        )),
    }
}

/// The rendered `docker` contextualisation: environment and command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Context {
    pub env: Vec<String>,
    /// `None`: the image's own command.
    pub command: Option<Vec<String>>,
}

impl Context {
    /// From the rendered attributes (`null` when the node has no `docker`
    /// contextualisation). Unknown keys (`context_variables`, ...) are ignored.
    pub fn from_attributes(attrs: &Value) -> Result<Self> {
        let mut ctx = Self::default();
        let Some(obj) = attrs.as_object() else {
            return Ok(ctx);
        };
        match obj.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => ctx.env.push(s.clone()),
                        Value::Number(_) | Value::Bool(_) => ctx.env.push(item.to_string()),
                        _ => {
                            return Err(PluginError::invalid(
                                "",
                                format!(
                                    "contextualisation `env` entry {i} is not a `KEY=value` string"
                                ),
                            ));
                        }
                    }
                }
            }
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    ctx.env.push(format!("{k}={v}"));
                }
            }
            Some(_) => {
                return Err(PluginError::invalid(
                    "",
                    "contextualisation `env` must be a list of `KEY=value` strings",
                ));
            }
        }
        ctx.command = match obj.get("command") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(split_command(s).map_err(|m| {
                PluginError::invalid("", format!("contextualisation `command`: {m}"))
            })?),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
                        _ => Err(PluginError::invalid(
                            "",
                            "contextualisation `command` list items must be strings",
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(_) => {
                return Err(PluginError::invalid(
                    "",
                    "contextualisation `command` must be a string or a list of strings",
                ));
            }
        };
        Ok(ctx)
    }
}

/// Split a command line the way a POSIX shell splits words (no expansion): whitespace
/// separates, single quotes are literal, double quotes allow `\"`, `\\`, `\$` and
/// `` \` ``, a backslash outside quotes escapes the next character.
pub fn split_command(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => cur.push(e),
                            Some('\n') => {}
                            Some(e) => {
                                cur.push('\\');
                                cur.push(e);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(e) => cur.push(e),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The JSON Schema of the section.
pub fn schema() -> Value {
    let port_num = json!({"type": "integer", "minimum": 1, "maximum": 65535});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "docker resource",
        "description": "One container per node instance on a Docker Engine.",
        "type": "object",
        "properties": {
            "type": {"const": "docker"},
            "endpoint": {
                "type": "string",
                "description": "The Engine: `unix:///var/run/docker.sock` or `tcp://host:port`. Default: the local socket, which the operator must grant (`plugins.docker.unix`).",
                "pattern": "^(unix://|tcp://|http://|https://)"
            },
            "origin": {
                "type": "string",
                "description": "`local` (the image must be on the engine), `dockerhub` (pulled when missing) or the http(s) URL of a filesystem tarball to import."
            },
            "image": {"type": "string", "minLength": 1},
            "tag": {"type": "string", "minLength": 1, "default": "latest"},
            "name": {"type": "string", "description": "Prefix of the container name (default: the node name)."},
            "network": {"type": "boolean", "default": true, "description": "Join the infrastructure's own bridge network."},
            "ports": {
                "type": "array",
                "description": "Published ports, bound to 127.0.0.1 unless an address is given.",
                "items": {"anyOf": [
                    port_num,
                    {"type": "string"},
                    {"type": "object", "properties": {
                        "container": {"anyOf": [port_num, {"type": "string"}]},
                        "host": {"anyOf": [port_num, {"type": "string"}]},
                        "host_ip": {"type": "string"},
                        "protocol": {"enum": ["tcp", "udp", "sctp"]}
                    }, "required": ["container"], "additionalProperties": false}
                ]}
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "volumes": {"type": "array", "items": {"type": "string"}},
            "memory": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
            "cpus": {"type": "number", "exclusiveMinimum": 0},
            "restart": {"type": "string"},
            "stop_grace_s": {"type": "integer", "minimum": 0},
            "stop_signal": {"type": "string"}
        },
        "required": ["type", "origin", "image"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(extra: Value) -> Value {
        let mut v = json!({"type": "docker", "endpoint": "unix:///var/run/docker.sock", "origin": "local", "image": "busybox"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    fn err_path(extra: Value) -> String {
        match DockerSection::parse(&section(extra)) {
            Err(PluginError::InvalidConfig { path, .. }) => path,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn minimal_section_gets_defaults() {
        let s = DockerSection::parse(&section(json!({}))).unwrap();
        assert_eq!(s.endpoint, Endpoint::Unix("/var/run/docker.sock".into()));
        assert_eq!(s.reference(), "busybox:latest");
        assert!(s.network);
        assert_eq!(s.stop_grace_s, DEFAULT_STOP_GRACE_S);
        let s = DockerSection::parse(
            &json!({"type": "docker", "origin": "dockerhub", "image": "x", "tag": "1"}),
        )
        .unwrap();
        assert_eq!(s.endpoint_text, DEFAULT_ENDPOINT);
        assert_eq!(s.origin, Origin::Registry);
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375"),
            Ok(Endpoint::Net("http://127.0.0.1:2375".into()))
        );
        assert_eq!(
            Endpoint::parse("https://d.example:2376/"),
            Ok(Endpoint::Net("https://d.example:2376".into()))
        );
        assert!(
            Endpoint::parse("tcp://host")
                .unwrap_err()
                .contains("host:port")
        );
        assert!(Endpoint::parse("unix://relative.sock").is_err());
        assert!(Endpoint::parse("replace_with_your_docker_endpoint").is_err());
        assert_eq!(err_path(json!({"endpoint": "ftp://x:1"})), "/endpoint");
    }

    #[test]
    fn origins() {
        assert_eq!(
            Origin::parse("https://x/y.tar"),
            Ok(Origin::Url("https://x/y.tar".into()))
        );
        assert_eq!(err_path(json!({"origin": "somewhere"})), "/origin");
    }

    #[test]
    fn ports() {
        let p = |v: Value| parse_port(&v).unwrap();
        assert_eq!(
            p(json!(80)),
            Port {
                container: 80,
                protocol: "tcp".into(),
                host_ip: "127.0.0.1".into(),
                host: None
            }
        );
        assert_eq!(p(json!("9000:80")).host, Some(9000));
        let x = p(json!("0.0.0.0:9000:80/udp"));
        assert_eq!(
            (x.host_ip.as_str(), x.host, x.container, x.protocol.as_str()),
            ("0.0.0.0", Some(9000), 80, "udp")
        );
        assert_eq!(p(json!("127.0.0.1::80")).host, None);
        assert_eq!(p(json!("[::1]:9000:80")).host_ip, "::1");
        assert_eq!(p(json!({"container": 80, "host": 8080})).host, Some(8080));
        assert_eq!(err_path(json!({"ports": [80, "x:y"]})), "/ports/1");
        assert_eq!(err_path(json!({"ports": [{"host": 1}]})), "/ports/0");
        assert_eq!(err_path(json!({"ports": [70000]})), "/ports/0");
    }

    #[test]
    fn volumes_memory_restart_labels() {
        assert_eq!(
            parse_volume("data:/var/lib/x:ro"),
            Ok(Volume::Named {
                name: "data".into(),
                target: "/var/lib/x".into(),
                read_only: true
            })
        );
        assert!(matches!(parse_volume("/srv:/srv"), Ok(Volume::Bind { .. })));
        assert!(matches!(
            parse_volume("/cache"),
            Ok(Volume::Anonymous { .. })
        ));
        assert_eq!(err_path(json!({"volumes": ["data:rel"]})), "/volumes/0");
        assert_eq!(parse_memory(&json!("64m")), Ok(64 << 20));
        assert_eq!(parse_memory(&json!("1.5GiB")), Ok(1536 << 20));
        assert_eq!(parse_memory(&json!(4096)), Ok(4096));
        assert_eq!(err_path(json!({"memory": "lots"})), "/memory");
        assert_eq!(parse_restart("on-failure:3").unwrap().max_retries, 3);
        assert_eq!(err_path(json!({"restart": "sometimes"})), "/restart");
        assert_eq!(
            err_path(json!({"labels": {"occopus.node-id": "x"}})),
            "/labels/occopus.node-id"
        );
        assert_eq!(err_path(json!({"cpus": -1.0})), "/cpus");
        assert_eq!(err_path(json!({"unknown": 1})), "/unknown");
        let s = DockerSection::parse(&section(json!({"cpus": 0.5}))).unwrap();
        assert_eq!(s.nano_cpus, Some(500_000_000));
    }

    #[test]
    fn names_derive_from_node_id() {
        assert_eq!(container_name(None, "web", "6f1c-22"), "web-6f1c-22");
        assert_eq!(container_name(Some("my app"), "web", "id"), "my-app-id");
        assert_eq!(container_name(Some("--"), "web", "id"), "occopus-id");
        assert_eq!(network_name("a/b"), "occopus-a-b");
        assert_eq!(hostname("Ping_Receiver"), "ping-receiver");
    }

    #[test]
    fn context_env_and_command() {
        let c = Context::from_attributes(
            &json!({"env": ["message=Hello World"], "command": "sh -c /root/start.sh"}),
        )
        .unwrap();
        assert_eq!(c.env, vec!["message=Hello World"]);
        assert_eq!(c.command.unwrap(), vec!["sh", "-c", "/root/start.sh"]);
        let c =
            Context::from_attributes(&json!({"command": ["a b", "c"], "context_variables": {}}))
                .unwrap();
        assert_eq!(c.command.unwrap(), vec!["a b", "c"]);
        assert_eq!(
            Context::from_attributes(&Value::Null).unwrap(),
            Context::default()
        );
        assert!(Context::from_attributes(&json!({"env": "A=1"})).is_err());
    }

    #[test]
    fn command_splitting() {
        assert_eq!(
            split_command(r#"sh -c 'echo "a b"; exit 3'"#).unwrap(),
            vec!["sh", "-c", r#"echo "a b"; exit 3"#]
        );
        assert_eq!(
            split_command(r#"a "b \"c\" \n" d\ e ''"#).unwrap(),
            vec!["a", r#"b "c" \n"#, "d e", ""]
        );
        assert!(split_command("a 'b").is_err());
        assert!(split_command("a \"b").is_err());
    }

    #[test]
    fn schema_lists_every_field() {
        let s = schema();
        let props = s["properties"].as_object().unwrap();
        for f in [
            "endpoint",
            "origin",
            "image",
            "tag",
            "name",
            "network",
            "ports",
            "labels",
            "volumes",
            "memory",
            "cpus",
            "restart",
            "stop_grace_s",
            "stop_signal",
        ] {
            assert!(props.contains_key(f), "{f}");
        }
    }
}
