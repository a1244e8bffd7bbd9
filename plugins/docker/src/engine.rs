//! The Docker Engine side of the plugin: containers, images, the per-infrastructure
//! network and volumes, spoken over a [`Transport`] (the host's `http` import in the
//! component, a scripted fake in unit tests).
//!
//! Owns the Engine API calls (API version [`API`]) and the mapping of their answers to
//! plugin results: container states to node statuses, engine errors to retryable or
//! permanent [`PluginError`]s. Must not: talk to anything but the one engine it is given,
//! or log environment values (they may hold secrets).

use crate::config::{
    self, Context, DockerSection, LABEL_INFRA, LABEL_NODE_ID, LABEL_NODE_NAME, Origin, Volume,
};
use occopus_sdk::{Addresses, NodeContext, NodeStatus, PluginError, ResourceState, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Engine API version used for every call (Engine 20.10 and later speak it).
pub const API: &str = "/v1.41";
/// Log lines quoted in the state message of a failed container.
pub const LOG_TAIL_LINES: usize = 20;
/// Longest log excerpt quoted, in bytes.
const LOG_TAIL_BYTES: usize = 2000;

/// An Engine answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One HTTP exchange with the engine. `path` starts with `/` (after the API version)
/// and carries the query. Connection failures are transient errors.
pub trait Transport {
    fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Reply>;
}

/// What `create` returns and later calls receive back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// The engine the container lives on, as written in the section at creation.
    pub endpoint: String,
    /// The infrastructure network it joined, if any.
    #[serde(default)]
    pub network: Option<String>,
    /// `image:tag`.
    pub image: String,
    /// Seconds between the stop signal and SIGKILL on destroy.
    #[serde(default = "default_grace")]
    pub stop_grace_s: u64,
}

fn default_grace() -> u64 {
    config::DEFAULT_STOP_GRACE_S
}

/// The engine at one endpoint.
pub struct Engine<'a> {
    t: &'a dyn Transport,
    /// The endpoint as written, for messages.
    endpoint: String,
}

/// Percent-encode a query value or path segment (RFC 3986 unreserved characters kept).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encode an image reference for a path (`/` and `:` kept: the engine's router
/// takes the rest of the path as the name).
fn enc_ref(s: &str) -> String {
    s.split('/')
        .map(|seg| seg.split(':').map(enc).collect::<Vec<_>>().join(":"))
        .collect::<Vec<_>>()
        .join("/")
}

fn label_filter(key: &str, value: &str) -> String {
    enc(&json!({"label": [format!("{key}={value}")]}).to_string())
}

/// The engine's own message from an error body (`{"message": "..."}`), or the text.
fn engine_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(m) = v.get("message").and_then(Value::as_str)
    {
        return m.trim().to_string();
    }
    let text = String::from_utf8_lossy(body);
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one.chars().take(300).collect()
}

impl<'a> Engine<'a> {
    pub fn new(t: &'a dyn Transport, endpoint: impl Into<String>) -> Self {
        Self {
            t,
            endpoint: endpoint.into(),
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.t
            .send(method, path, bytes)
            .map_err(|e| e.context(format!("Docker Engine at {}", self.endpoint)))
    }

    /// The error an unexpected answer stands for: 5xx transient, 404 not found, 409
    /// conflict, 400 invalid configuration, other 4xx permanent; the engine's message is
    /// kept.
    pub fn error(&self, what: &str, r: &Reply) -> PluginError {
        let msg = format!(
            "{what}: Docker Engine at {} answered HTTP {}: {}",
            self.endpoint,
            r.status,
            engine_message(&r.body)
        );
        match r.status {
            500..=599 => PluginError::transient(msg),
            404 => PluginError::not_found(msg),
            409 => PluginError::conflict(msg),
            400 => PluginError::invalid("", msg),
            _ => PluginError::internal(msg),
        }
    }

    fn json(&self, what: &str, r: &Reply) -> Result<Value> {
        serde_json::from_slice(&r.body).map_err(|e| {
            PluginError::internal(format!(
                "{what}: Docker Engine at {} sent an answer that is not JSON: {e}",
                self.endpoint
            ))
        })
    }

    /// `GET` a JSON document; `None` on 404.
    fn get_opt(&self, what: &str, path: &str) -> Result<Option<Value>> {
        let r = self.send("GET", path, None)?;
        match r.status {
            200 => self.json(what, &r).map(Some),
            404 => Ok(None),
            _ => Err(self.error(what, &r)),
        }
    }

    /// Inspect a container by id or name; `None` when it does not exist.
    pub fn inspect(&self, id: &str) -> Result<Option<Value>> {
        self.get_opt(
            &format!("inspecting container {id}"),
            &format!("/containers/{}/json", enc(id)),
        )
    }

    /// Containers (running or not) carrying `key=value`.
    pub fn containers_labelled(&self, key: &str, value: &str) -> Result<Vec<Value>> {
        let what = format!("listing containers labelled {key}={value}");
        let r = self.send(
            "GET",
            &format!(
                "/containers/json?all=1&filters={}",
                label_filter(key, value)
            ),
            None,
        )?;
        if r.status != 200 {
            return Err(self.error(&what, &r));
        }
        match self.json(&what, &r)? {
            Value::Array(a) => Ok(a),
            _ => Err(PluginError::internal(format!(
                "{what}: expected a JSON list"
            ))),
        }
    }

    fn start(&self, id: &str) -> Result<()> {
        let what = format!("starting container {id}");
        let r = self.send("POST", &format!("/containers/{}/start", enc(id)), None)?;
        match r.status {
            204 | 304 => Ok(()),
            500 => {
                // The engine answers 500 for errors no retry fixes: a taken host port, a
                // command that does not exist in the image.
                let m = engine_message(&r.body);
                let permanent = [
                    "port is already allocated",
                    "address already in use",
                    "executable file not found",
                    "no such file or directory",
                    "permission denied",
                ];
                if permanent.iter().any(|p| m.contains(p)) {
                    Err(PluginError::internal(format!(
                        "{what}: Docker Engine at {} answered HTTP 500: {m}",
                        self.endpoint
                    )))
                } else {
                    Err(self.error(&what, &r))
                }
            }
            _ => Err(self.error(&what, &r)),
        }
    }

    /// Make sure `image:tag` is on the engine, pulling or importing it per `origin`.
    pub fn ensure_image(&self, s: &DockerSection) -> Result<()> {
        let reference = s.reference();
        let inspect = format!("/images/{}/json", enc_ref(&reference));
        if self
            .get_opt(&format!("inspecting image {reference}"), &inspect)?
            .is_some()
        {
            return Ok(());
        }
        let (what, path) = match &s.origin {
            Origin::Local => {
                return Err(PluginError::not_found(format!(
                    "image `{}` with tag `{}` is not on the Docker Engine at {} and origin is `local`: \
                     build or load it there first (`docker build -t {reference} .` or `docker load`), \
                     or set origin to `dockerhub` or to the URL of an image tarball",
                    s.image, s.tag, self.endpoint
                )));
            }
            Origin::Registry => (
                format!("pulling image `{}` with tag `{}`", s.image, s.tag),
                format!(
                    "/images/create?fromImage={}&tag={}",
                    enc(&s.image),
                    enc(&s.tag)
                ),
            ),
            Origin::Url(url) => (
                format!(
                    "importing image `{}` with tag `{}` from {url}",
                    s.image, s.tag
                ),
                format!(
                    "/images/create?fromSrc={}&repo={}&tag={}",
                    enc(url),
                    enc(&s.image),
                    enc(&s.tag)
                ),
            ),
        };
        occopus_sdk::log::info(format!("{what} on {}", self.endpoint));
        let r = self.send("POST", &path, None)?;
        if r.status == 404 {
            return Err(PluginError::not_found(format!(
                "{what}: image not found ({}); check the image name and tag",
                engine_message(&r.body)
            )));
        }
        if r.status != 200 {
            return Err(self.error(&what, &r));
        }
        // The answer is a stream of JSON progress lines; a failure arrives as a line with
        // `error` after the 200 status.
        if let Some(err) = stream_error(&r.body) {
            let lower = err.to_ascii_lowercase();
            let msg = format!("{what}: {err}");
            return Err(
                if lower.contains("not found")
                    || lower.contains("does not exist")
                    || lower.contains("manifest unknown")
                    || lower.contains("404")
                {
                    PluginError::not_found(msg)
                } else {
                    PluginError::transient(msg)
                },
            );
        }
        if self
            .get_opt(&format!("inspecting image {reference}"), &inspect)?
            .is_none()
        {
            return Err(PluginError::internal(format!(
                "{what}: the engine reported success but image `{}` with tag `{}` is still missing",
                s.image, s.tag
            )));
        }
        Ok(())
    }

    /// Create the infrastructure's bridge network unless it exists.
    pub fn ensure_network(&self, node: &NodeContext) -> Result<String> {
        let name = config::network_name(&node.infra_id);
        let what = format!("creating network {name}");
        if self
            .get_opt(
                &format!("inspecting network {name}"),
                &format!("/networks/{}", enc(&name)),
            )?
            .is_some()
        {
            return Ok(name);
        }
        let body = json!({
            "Name": name,
            "Driver": "bridge",
            "CheckDuplicate": true,
            "Labels": {LABEL_INFRA: node.infra_id, "occopus.infra-name": node.infra_name},
        });
        let r = self.send("POST", "/networks/create", Some(&body))?;
        match r.status {
            200 | 201 => Ok(name),
            // Made meanwhile by a sibling node's create.
            409 => Ok(name),
            _ => Err(self.error(&what, &r)),
        }
    }

    fn ensure_volumes(&self, s: &DockerSection, node: &NodeContext) -> Result<()> {
        for v in &s.volumes {
            if let Volume::Named { name, .. } = v {
                let full = config::volume_name(&node.infra_id, name);
                let body = json!({"Name": full, "Labels": {LABEL_INFRA: node.infra_id}});
                let r = self.send("POST", "/volumes/create", Some(&body))?;
                if !matches!(r.status, 200 | 201) {
                    return Err(self.error(&format!("creating volume {full}"), &r));
                }
            }
        }
        Ok(())
    }

    /// The instance made for `node` earlier (found by its node-id label), if any.
    pub fn find(&self, s: &DockerSection, node: &NodeContext) -> Result<Option<Instance>> {
        let list = self.containers_labelled(LABEL_NODE_ID, &node.node_id)?;
        let wanted = config::container_name(s.name.as_deref(), &node.node_name, &node.node_id);
        let name_of = |c: &Value| -> String {
            c["Names"]
                .as_array()
                .and_then(|n| n.first())
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string()
        };
        let chosen = list
            .iter()
            .find(|c| name_of(c) == wanted)
            .or_else(|| list.first());
        Ok(chosen.and_then(|c| {
            let id = c["Id"].as_str()?.to_string();
            Some(Instance {
                id,
                name: name_of(c),
                endpoint: s.endpoint_text.clone(),
                network: s.network.then(|| config::network_name(&node.infra_id)),
                image: s.reference(),
                stop_grace_s: s.stop_grace_s,
            })
        }))
    }

    /// Start an adopted container that was created but never started.
    fn resume(&self, inst: &Instance) -> Result<()> {
        if let Some(c) = self.inspect(&inst.id)?
            && c["State"]["Status"].as_str() == Some("created")
        {
            occopus_sdk::log::info(format!("starting adopted container {}", inst.name));
            self.start(&inst.id)?;
        }
        Ok(())
    }

    /// Create and start the node's container, or adopt the one made for its node id.
    pub fn create(&self, s: &DockerSection, ctx: &Context, node: &NodeContext) -> Result<Instance> {
        if let Some(inst) = self.find(s, node)? {
            occopus_sdk::log::info(format!(
                "adopting container {} made earlier for node id {}",
                inst.name, node.node_id
            ));
            self.resume(&inst)?;
            return Ok(inst);
        }
        self.ensure_image(s)?;
        let network = if s.network {
            Some(self.ensure_network(node)?)
        } else {
            None
        };
        self.ensure_volumes(s, node)?;
        let name = config::container_name(s.name.as_deref(), &node.node_name, &node.node_id);
        let body = container_body(s, ctx, node, network.as_deref());
        let what = format!("creating container {name} from {}", s.reference());
        let r = self.send(
            "POST",
            &format!("/containers/create?name={}", enc(&name)),
            Some(&body),
        )?;
        let id = match r.status {
            201 => self.json(&what, &r)?["Id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| PluginError::internal(format!("{what}: no `Id` in the answer")))?,
            409 => {
                // The name is taken: ours if it carries our node id (a concurrent retry).
                let other = self.inspect(&name)?;
                match other {
                    Some(c)
                        if c["Config"]["Labels"][LABEL_NODE_ID].as_str()
                            == Some(node.node_id.as_str()) =>
                    {
                        c["Id"].as_str().unwrap_or(&name).to_string()
                    }
                    Some(_) => {
                        return Err(PluginError::conflict(format!(
                            "{what}: a container named `{name}` already exists on {} and was not made for node id {}; remove or rename it",
                            self.endpoint, node.node_id
                        )));
                    }
                    None => return Err(self.error(&what, &r)),
                }
            }
            404 => {
                return Err(PluginError::not_found(format!(
                    "{what}: image `{}` with tag `{}` is missing on the Docker Engine at {} ({})",
                    s.image,
                    s.tag,
                    self.endpoint,
                    engine_message(&r.body)
                )));
            }
            _ => return Err(self.error(&what, &r)),
        };
        let inst = Instance {
            id,
            name,
            endpoint: s.endpoint_text.clone(),
            network,
            image: s.reference(),
            stop_grace_s: s.stop_grace_s,
        };
        if let Err(e) = self.start(&inst.id) {
            if !e.is_retryable() {
                // Nothing will ever start it: leave nothing behind.
                let _ = self.destroy(&inst, &node.infra_id);
            }
            return Err(e);
        }
        occopus_sdk::log::info(format!(
            "started container {} ({})",
            inst.name,
            short(&inst.id)
        ));
        Ok(inst)
    }

    /// The node status of a container.
    pub fn state(&self, inst: &Instance) -> Result<ResourceState> {
        let Some(c) = self.inspect(&inst.id)? else {
            return Ok(ResourceState::with_message(
                NodeStatus::Shutdown,
                format!(
                    "container {} no longer exists on {}",
                    inst.name, self.endpoint
                ),
            ));
        };
        let st = &c["State"];
        let status = st["Status"].as_str().unwrap_or("unknown");
        let code = st["ExitCode"].as_i64().unwrap_or(0);
        Ok(match status {
            "running" => match st["Health"]["Status"].as_str() {
                Some("starting") => ResourceState::pending("running; its health check is starting"),
                Some("unhealthy") => ResourceState::with_message(
                    NodeStatus::TempFailed,
                    "running, but its own health check reports unhealthy",
                ),
                _ => ResourceState::ready(),
            },
            "created" => ResourceState::pending("created, not started yet"),
            "restarting" => ResourceState::pending(format!(
                "restarting (restarts so far: {}; last exit code {code})",
                c["RestartCount"].as_i64().unwrap_or(0)
            )),
            "paused" => ResourceState::with_message(NodeStatus::TempFailed, "paused"),
            "removing" => ResourceState::with_message(NodeStatus::Shutdown, "being removed"),
            "exited" if code == 0 => {
                ResourceState::with_message(NodeStatus::Shutdown, "exited with code 0")
            }
            "exited" | "dead" => {
                let mut msg = if status == "dead" {
                    format!("container is dead (exit code {code})")
                } else {
                    format!("exited with code {code}")
                };
                if st["OOMKilled"].as_bool() == Some(true) {
                    msg.push_str(", killed for running out of memory");
                }
                if let Some(e) = st["Error"].as_str().filter(|e| !e.is_empty()) {
                    msg.push_str(&format!(" ({e})"));
                }
                match self.log_tail(&inst.id) {
                    Ok(t) if !t.is_empty() => {
                        msg.push_str("; last log lines:\n");
                        msg.push_str(&t);
                    }
                    Ok(_) => msg.push_str("; no log output"),
                    Err(e) => msg.push_str(&format!("; logs unavailable: {e}")),
                }
                ResourceState::failed(msg)
            }
            other => ResourceState::with_message(
                NodeStatus::Unknown,
                format!("unexpected container status `{other}`"),
            ),
        })
    }

    /// The last [`LOG_TAIL_LINES`] lines of the container's output (stdout and stderr).
    pub fn log_tail(&self, id: &str) -> Result<String> {
        let what = format!("reading the logs of container {id}");
        let r = self.send(
            "GET",
            &format!(
                "/containers/{}/logs?stdout=1&stderr=1&tail={LOG_TAIL_LINES}",
                enc(id)
            ),
            None,
        )?;
        if r.status != 200 {
            return Err(self.error(&what, &r));
        }
        let text = String::from_utf8_lossy(&demux(&r.body)).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        let mut out = lines[from..].join("\n");
        if out.len() > LOG_TAIL_BYTES {
            let mut cut = out.len() - LOG_TAIL_BYTES;
            while !out.is_char_boundary(cut) {
                cut += 1;
            }
            out = format!("…{}", &out[cut..]);
        }
        Ok(out)
    }

    /// The container's addresses on its networks; the infrastructure network's first.
    pub fn addresses(&self, inst: &Instance) -> Result<Addresses> {
        let Some(c) = self.inspect(&inst.id)? else {
            return Err(PluginError::not_found(format!(
                "container {} no longer exists on {}",
                inst.name, self.endpoint
            )));
        };
        Ok(addresses_of(&c, inst.network.as_deref()))
    }

    /// Stop (grace period, then SIGKILL) and remove the container with its anonymous
    /// volumes; when it was the infrastructure's last container, remove the network and
    /// the named volumes too. Already gone is success.
    pub fn destroy(&self, inst: &Instance, infra_id: &str) -> Result<()> {
        let stop = format!("stopping container {}", inst.name);
        let r = self.send(
            "POST",
            &format!("/containers/{}/stop?t={}", enc(&inst.id), inst.stop_grace_s),
            None,
        )?;
        if !matches!(r.status, 204 | 304 | 404) {
            return Err(self.error(&stop, &r));
        }
        let rm = format!("removing container {}", inst.name);
        let r = self.send(
            "DELETE",
            &format!("/containers/{}?v=1&force=1", enc(&inst.id)),
            None,
        )?;
        match r.status {
            204 | 404 => {}
            // "removal already in progress": a concurrent destroy owns it.
            409 => {}
            _ => return Err(self.error(&rm, &r)),
        }
        self.cleanup_infra(infra_id)
    }

    /// Remove the infrastructure's network and named volumes once none of its
    /// containers is left.
    pub fn cleanup_infra(&self, infra_id: &str) -> Result<()> {
        if !self.containers_labelled(LABEL_INFRA, infra_id)?.is_empty() {
            return Ok(());
        }
        let net = config::network_name(infra_id);
        let r = self.send("DELETE", &format!("/networks/{}", enc(&net)), None)?;
        match r.status {
            200 | 204 | 404 => {}
            // Still has endpoints: a sibling was created meanwhile; it cleans up later.
            403 | 409 => {}
            _ => return Err(self.error(&format!("removing network {net}"), &r)),
        }
        let what = format!("listing the volumes of infrastructure {infra_id}");
        let r = self.send(
            "GET",
            &format!("/volumes?filters={}", label_filter(LABEL_INFRA, infra_id)),
            None,
        )?;
        if r.status != 200 {
            return Err(self.error(&what, &r));
        }
        let vols = self.json(&what, &r)?;
        for v in vols["Volumes"].as_array().into_iter().flatten() {
            let Some(name) = v["Name"].as_str() else {
                continue;
            };
            let r = self.send("DELETE", &format!("/volumes/{}", enc(name)), None)?;
            if !matches!(r.status, 204 | 404 | 409) {
                return Err(self.error(&format!("removing volume {name}"), &r));
            }
        }
        Ok(())
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The Engine API body of `POST /containers/create`.
pub fn container_body(
    s: &DockerSection,
    ctx: &Context,
    node: &NodeContext,
    network: Option<&str>,
) -> Value {
    let mut labels: Map<String, Value> = s
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    labels.insert(LABEL_INFRA.into(), json!(node.infra_id));
    labels.insert(LABEL_NODE_NAME.into(), json!(node.node_name));
    labels.insert(LABEL_NODE_ID.into(), json!(node.node_id));
    let mut exposed = Map::new();
    let mut bindings = Map::new();
    for p in &s.ports {
        let key = format!("{}/{}", p.container, p.protocol);
        exposed.insert(key.clone(), json!({}));
        let b = json!({
            "HostIp": p.host_ip,
            "HostPort": p.host.map(|h| h.to_string()).unwrap_or_default(),
        });
        match bindings.get_mut(&key) {
            Some(Value::Array(a)) => a.push(b),
            _ => {
                bindings.insert(key, json!([b]));
            }
        }
    }
    let mut binds = Vec::new();
    let mut anonymous = Map::new();
    for v in &s.volumes {
        match v {
            Volume::Named {
                name,
                target,
                read_only,
            } => binds.push(format!(
                "{}:{target}{}",
                config::volume_name(&node.infra_id, name),
                if *read_only { ":ro" } else { "" }
            )),
            Volume::Bind {
                source,
                target,
                read_only,
            } => binds.push(format!(
                "{source}:{target}{}",
                if *read_only { ":ro" } else { "" }
            )),
            Volume::Anonymous { target } => {
                anonymous.insert(target.clone(), json!({}));
            }
        }
    }
    let mut host = json!({"PortBindings": bindings, "Binds": binds});
    if let Some(m) = s.memory {
        host["Memory"] = json!(m);
    }
    if let Some(c) = s.nano_cpus {
        host["NanoCpus"] = json!(c);
    }
    if let Some(r) = &s.restart {
        host["RestartPolicy"] = json!({"Name": r.name, "MaximumRetryCount": r.max_retries});
    }
    let mut body = json!({
        "Image": s.reference(),
        "Env": ctx.env,
        "Labels": labels,
        "Hostname": config::hostname(&node.node_name),
        "ExposedPorts": exposed,
        "Volumes": anonymous,
        "StopTimeout": s.stop_grace_s,
        "HostConfig": host,
    });
    if let Some(cmd) = &ctx.command {
        body["Cmd"] = json!(cmd);
    }
    if let Some(sig) = &s.stop_signal {
        body["StopSignal"] = json!(sig);
    }
    if let Some(net) = network {
        body["HostConfig"]["NetworkMode"] = json!(net);
        body["NetworkingConfig"] = json!({"EndpointsConfig": {net: {
            "Aliases": [config::hostname(&node.node_name)]
        }}});
    }
    body
}

/// Addresses from an inspect document: every non-empty IP of every network, the one on
/// `preferred` first.
pub fn addresses_of(c: &Value, preferred: Option<&str>) -> Addresses {
    let mut ips: Vec<String> = Vec::new();
    if let Some(nets) = c["NetworkSettings"]["Networks"].as_object() {
        let mut ordered: Vec<(&String, &Value)> = nets.iter().collect();
        ordered.sort_by_key(|(name, _)| Some(name.as_str()) != preferred);
        for (_, n) in ordered {
            for key in ["IPAddress", "GlobalIPv6Address"] {
                if let Some(ip) = n[key].as_str().filter(|s| !s.is_empty())
                    && !ips.iter().any(|x| x == ip)
                {
                    ips.push(ip.to_string());
                }
            }
        }
    }
    if let Some(ip) = c["NetworkSettings"]["IPAddress"]
        .as_str()
        .filter(|s| !s.is_empty())
        && !ips.iter().any(|x| x == ip)
    {
        ips.push(ip.to_string());
    }
    Addresses {
        primary: ips.first().cloned(),
        private: ips.first().cloned(),
        all: ips,
    }
}

/// Undo the engine's log multiplexing: frames of `[stream, 0, 0, 0, size (u32 BE)]`
/// followed by `size` bytes. Output of a TTY container is not framed and is returned
/// as is.
pub fn demux(body: &[u8]) -> Vec<u8> {
    let framed = body.len() >= 8 && matches!(body[0], 0..=2) && body[1..4] == [0, 0, 0];
    if !framed {
        return body.to_vec();
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while rest.len() >= 8 {
        if !matches!(rest[0], 0..=2) || rest[1..4] != [0, 0, 0] {
            // Not a frame header after all: keep the remainder as text.
            out.extend_from_slice(rest);
            return out;
        }
        let size = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + size).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    out
}

/// The first `error` reported in a JSON-lines progress stream (image pull or import).
pub fn stream_error(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    // Lines are JSON objects, sometimes written back to back without a newline.
    let stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    for v in stream {
        let Ok(v) = v else { break };
        if let Some(e) = v["errorDetail"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
        {
            return Some(e.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// Answers scripted in order; records the requests.
    struct Script {
        answers: RefCell<VecDeque<(u16, Value)>>,
        seen: RefCell<Vec<String>>,
    }

    impl Script {
        fn new(answers: Vec<(u16, Value)>) -> Self {
            Self {
                answers: RefCell::new(answers.into()),
                seen: RefCell::new(Vec::new()),
            }
        }
    }

    impl Transport for Script {
        fn send(&self, method: &str, path: &str, _body: Option<Vec<u8>>) -> Result<Reply> {
            self.seen.borrow_mut().push(format!("{method} {path}"));
            let (status, body) = self
                .answers
                .borrow_mut()
                .pop_front()
                .unwrap_or_else(|| panic!("unscripted request {method} {path}"));
            let body = match body {
                Value::String(s) => s.into_bytes(),
                v => v.to_string().into_bytes(),
            };
            Ok(Reply { status, body })
        }
    }

    fn section() -> DockerSection {
        DockerSection::parse(&json!({"type": "docker", "endpoint": "unix:///d.sock", "origin": "local", "image": "app", "tag": "1", "ports": [8080], "volumes": ["data:/data", "/tmp/x"], "memory": "64m", "restart": "on-failure:2"})).unwrap()
    }

    fn node() -> NodeContext {
        NodeContext {
            infra_id: "inf".into(),
            infra_name: "demo".into(),
            node_name: "web".into(),
            node_id: "n1".into(),
            user_id: None,
        }
    }

    fn inst() -> Instance {
        Instance {
            id: "c1".into(),
            name: "web-n1".into(),
            endpoint: "unix:///d.sock".into(),
            network: Some("occopus-inf".into()),
            image: "app:1".into(),
            stop_grace_s: 3,
        }
    }

    #[test]
    fn create_makes_image_check_network_volume_container_and_starts() {
        let t = Script::new(vec![
            (200, json!([])),                             // find: none
            (200, json!({"Id": "sha256:img"})),           // image present
            (404, json!({"message": "no such network"})), // network missing
            (201, json!({"Id": "net"})),                  // network created
            (201, json!({"Name": "occopus-inf-data"})),   // volume
            (201, json!({"Id": "c1", "Warnings": []})),   // container
            (204, json!("")),                             // start
        ]);
        let e = Engine::new(&t, "unix:///d.sock");
        let i = e.create(&section(), &Context::default(), &node()).unwrap();
        assert_eq!(i.id, "c1");
        assert_eq!(i.name, "web-n1");
        assert_eq!(i.network.as_deref(), Some("occopus-inf"));
        let seen = t.seen.borrow();
        assert!(
            seen[0].starts_with("GET /containers/json?all=1&filters="),
            "{seen:?}"
        );
        assert_eq!(seen[1], "GET /images/app:1/json");
        assert_eq!(seen[5], "POST /containers/create?name=web-n1");
        assert_eq!(seen[6], "POST /containers/c1/start");
    }

    #[test]
    fn create_adopts_and_starts_a_container_left_by_an_interrupted_attempt() {
        let t = Script::new(vec![
            (200, json!([{"Id": "c9", "Names": ["/web-n1"]}])),
            (200, json!({"Id": "c9", "State": {"Status": "created"}})),
            (204, json!("")),
        ]);
        let e = Engine::new(&t, "unix:///d.sock");
        let i = e.create(&section(), &Context::default(), &node()).unwrap();
        assert_eq!(i.id, "c9");
        assert_eq!(t.seen.borrow().last().unwrap(), "POST /containers/c9/start");
    }

    #[test]
    fn a_foreign_container_with_our_name_is_a_conflict() {
        let t = Script::new(vec![
            (200, json!([])),
            (200, json!({})),
            (200, json!({})),
            (
                409,
                json!({"message": "Conflict. The container name \"/web-n1\" is already in use"}),
            ),
            (200, json!({"Id": "other", "Config": {"Labels": {}}})),
        ]);
        let mut s = section();
        s.volumes.clear();
        let e = Engine::new(&t, "unix:///d.sock");
        let err = e.create(&s, &Context::default(), &node()).unwrap_err();
        assert!(matches!(err, PluginError::Conflict(_)), "{err}");
        assert!(
            err.to_string().contains("was not made for node id n1"),
            "{err}"
        );
    }

    #[test]
    fn missing_local_image_names_image_and_tag() {
        let t = Script::new(vec![
            (200, json!([])),
            (404, json!({"message": "No such image: app:1"})),
        ]);
        let e = Engine::new(&t, "unix:///d.sock");
        let err = e
            .create(&section(), &Context::default(), &node())
            .unwrap_err();
        assert!(matches!(err, PluginError::NotFound(_)), "{err}");
        let m = err.to_string();
        assert!(
            m.contains("image `app` with tag `1`") && m.contains("origin is `local`"),
            "{m}"
        );
    }

    #[test]
    fn engine_errors_map_to_retry_semantics() {
        let t = Script::new(vec![]);
        let e = Engine::new(&t, "tcp://h:1");
        let r = |status, m: &str| Reply {
            status,
            body: json!({"message": m}).to_string().into_bytes(),
        };
        assert!(e.error("x", &r(500, "boom")).is_retryable());
        assert!(e.error("x", &r(503, "busy")).is_retryable());
        let perm = e.error("x", &r(400, "bad parameter"));
        assert!(!perm.is_retryable());
        assert!(perm.to_string().contains("bad parameter"), "{perm}");
        assert!(matches!(
            e.error("x", &r(404, "gone")),
            PluginError::NotFound(_)
        ));
        assert!(!e.error("x", &r(403, "no")).is_retryable());
    }

    #[test]
    fn states_follow_the_container() {
        let run = |doc: Value, extra: Vec<(u16, Value)>| {
            let mut answers = vec![(200, doc)];
            answers.extend(extra);
            let t = Script::new(answers);
            Engine::new(&t, "unix:///d.sock").state(&inst()).unwrap()
        };
        assert_eq!(
            run(json!({"State": {"Status": "running"}}), vec![]).status,
            NodeStatus::Ready
        );
        assert_eq!(
            run(json!({"State": {"Status": "created"}}), vec![]).status,
            NodeStatus::Pending
        );
        assert_eq!(
            run(json!({"State": {"Status": "restarting"}}), vec![]).status,
            NodeStatus::Pending
        );
        assert_eq!(
            run(
                json!({"State": {"Status": "exited", "ExitCode": 0}}),
                vec![]
            )
            .status,
            NodeStatus::Shutdown
        );
        let mut logs = vec![1u8, 0, 0, 0, 0, 0, 0, 6];
        logs.extend_from_slice(b"hello\n");
        logs.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 5]);
        logs.extend_from_slice(b"oops\n");
        let failed = run(
            json!({"State": {"Status": "exited", "ExitCode": 3}}),
            vec![(200, Value::String(String::from_utf8(logs).unwrap()))],
        );
        assert_eq!(failed.status, NodeStatus::Failed);
        let m = failed.message.unwrap();
        assert!(
            m.starts_with("exited with code 3; last log lines:\nhello\noops"),
            "{m}"
        );
        let t = Script::new(vec![(404, json!({"message": "No such container"}))]);
        assert_eq!(
            Engine::new(&t, "x").state(&inst()).unwrap().status,
            NodeStatus::Shutdown
        );
    }

    #[test]
    fn destroy_is_idempotent_and_cleans_up_after_the_last_container() {
        let t = Script::new(vec![
            (404, json!({"message": "No such container"})),
            (404, json!({"message": "No such container"})),
            (200, json!([])),
            (204, json!("")),
            (200, json!({"Volumes": [{"Name": "occopus-inf-data"}]})),
            (204, json!("")),
        ]);
        Engine::new(&t, "x").destroy(&inst(), "inf").unwrap();
        let seen = t.seen.borrow();
        assert_eq!(seen[0], "POST /containers/c1/stop?t=3");
        assert_eq!(seen[3], "DELETE /networks/occopus-inf");
        assert_eq!(seen[5], "DELETE /volumes/occopus-inf-data");
        let t = Script::new(vec![
            (204, json!("")),
            (204, json!("")),
            (200, json!([{"Id": "sibling"}])),
        ]);
        Engine::new(&t, "x").destroy(&inst(), "inf").unwrap();
        assert_eq!(
            t.seen.borrow().len(),
            3,
            "the network stays while a sibling lives"
        );
    }

    #[test]
    fn container_body_carries_labels_ports_limits_and_network() {
        let ctx = Context {
            env: vec!["A=1".into()],
            command: Some(vec!["sh".into(), "-c".into(), "x".into()]),
        };
        let b = container_body(&section(), &ctx, &node(), Some("occopus-inf"));
        assert_eq!(b["Labels"][LABEL_NODE_ID], "n1");
        assert_eq!(b["Labels"][LABEL_INFRA], "inf");
        assert_eq!(
            b["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostIp"],
            "127.0.0.1"
        );
        assert_eq!(b["HostConfig"]["Binds"][0], "occopus-inf-data:/data");
        assert!(b["Volumes"]["/tmp/x"].is_object());
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(b["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
        assert_eq!(b["HostConfig"]["NetworkMode"], "occopus-inf");
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["occopus-inf"]["Aliases"][0],
            "web"
        );
        assert_eq!(b["Cmd"][2], "x");
        assert_eq!(b["Env"][0], "A=1");
    }

    #[test]
    fn addresses_prefer_the_infra_network() {
        let c = json!({"NetworkSettings": {"IPAddress": "", "Networks": {
            "bridge": {"IPAddress": "172.17.0.5"},
            "occopus-inf": {"IPAddress": "172.30.0.2"}
        }}});
        let a = addresses_of(&c, Some("occopus-inf"));
        assert_eq!(a.primary.as_deref(), Some("172.30.0.2"));
        assert_eq!(a.all, vec!["172.30.0.2", "172.17.0.5"]);
        assert_eq!(addresses_of(&json!({}), None), Addresses::none());
    }

    #[test]
    fn demux_and_stream_errors() {
        assert_eq!(demux(b"plain tty output\n"), b"plain tty output\n");
        assert_eq!(demux(&[1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']), b"hi");
        assert_eq!(
            stream_error(br#"{"status":"Pulling"}{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}"#),
            Some("manifest unknown".into())
        );
        assert_eq!(stream_error(b"{\"status\":\"Downloaded\"}\n"), None);
        assert_eq!(enc(r#"{"a":["b=c"]}"#), "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D");
        assert_eq!(
            enc_ref("registry:5000/lib/app:1"),
            "registry:5000/lib/app:1"
        );
    }
}
