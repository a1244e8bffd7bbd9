//! `docker`: the Docker Engine resource handler. Each node instance is one container on
//! the engine named by the section's `endpoint` (`unix:///var/run/docker.sock` or
//! `tcp://host:port`), spoken to through the Engine API with the host's `http` import.
//!
//! * The container name derives from the node id and its labels carry the infrastructure
//!   id, node name and node id, so a retried or resumed `create` adopts what an earlier
//!   attempt made (and starts it if it was left created-but-not-started).
//! * Containers of one infrastructure share a bridge network named from the infra id and
//!   reach each other by IP or by node name; the network and the infrastructure's named
//!   volumes go away with its last container.
//! * `state`: running → ready, created/restarting → pending, exited 0 → shutdown, exited
//!   non-zero or dead → failed with the exit code and the last log lines.
//! * Engine answers: 5xx and connection failures are transient, 4xx permanent with the
//!   engine's message.
//!
//! Layout: [`config`] (section, contextualisation, schema) and [`engine`] (Engine API
//! logic over a [`engine::Transport`]) are plain Rust, unit-tested natively; this file
//! only binds them to the host's `http` import. It must not reach anything but the
//! engine the section (or, for an existing container, its instance data) names: the host
//! enforces that, and a call outside it fails as `denied`.

pub mod config;
pub mod engine;

use config::{Context, DockerSection, Endpoint};
use engine::{Engine, Instance, Reply, Transport};
use occopus_sdk::http::Http;
use occopus_sdk::prelude::*;

/// The Engine API through the host's `http` import.
struct HostTransport {
    endpoint: Endpoint,
}

impl HostTransport {
    fn new(endpoint_text: &str) -> Result<Self> {
        let endpoint =
            Endpoint::parse(endpoint_text).map_err(|m| PluginError::invalid("/endpoint", m))?;
        Ok(Self { endpoint })
    }
}

impl Transport for HostTransport {
    fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Reply> {
        let mut req = match &self.endpoint {
            Endpoint::Unix(sock) => {
                Http::new(method, format!("http://docker{}{path}", engine::API))
                    .unix_socket(sock.clone())
            }
            Endpoint::Net(base) => Http::new(method, format!("{base}{}{path}", engine::API)),
        };
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let r = req.send()?;
        Ok(Reply {
            status: r.status,
            body: r.body,
        })
    }
}

/// The `docker` resource handler.
#[derive(Default)]
pub struct Docker;

fn instance(inst: &InstanceRef) -> Result<Instance> {
    inst.instance()
}

impl ResourceHandler for Docker {
    fn metadata(&self) -> Metadata {
        occopus_sdk::metadata!("docker")
            .handles("docker", config::schema())
            // Only used when a section names no endpoint; the operator must grant it.
            .capability(format!(
                "unix:{}",
                config::DEFAULT_ENDPOINT.trim_start_matches("unix://")
            ))
    }

    fn validate(&self, _type_name: &str, section: &Value) -> Result<()> {
        DockerSection::parse(section).map(drop)
    }

    fn create(&self, req: &CreateRequest) -> Result<Value> {
        let s = DockerSection::parse(&req.resource)?;
        let ctx = Context::from_attributes(&req.attributes)?;
        let t = HostTransport::new(&s.endpoint_text)?;
        let inst = Engine::new(&t, &s.endpoint_text).create(&s, &ctx, &req.node)?;
        to_value(&inst)
    }

    fn find(&self, req: &CreateRequest) -> Result<Option<Value>> {
        let s = DockerSection::parse(&req.resource)?;
        let t = HostTransport::new(&s.endpoint_text)?;
        Engine::new(&t, &s.endpoint_text)
            .find(&s, &req.node)?
            .as_ref()
            .map(to_value)
            .transpose()
    }

    fn state(&self, inst: &InstanceRef) -> Result<ResourceState> {
        let i = instance(inst)?;
        let t = HostTransport::new(&i.endpoint)?;
        Engine::new(&t, &i.endpoint).state(&i)
    }

    fn addresses(&self, inst: &InstanceRef) -> Result<Addresses> {
        let i = instance(inst)?;
        let t = HostTransport::new(&i.endpoint)?;
        Engine::new(&t, &i.endpoint).addresses(&i)
    }

    fn destroy(&self, inst: &InstanceRef) -> Result<()> {
        let i = instance(inst)?;
        let t = HostTransport::new(&i.endpoint)?;
        Engine::new(&t, &i.endpoint).destroy(&i, &inst.node.infra_id)
    }
}

fn to_value(inst: &Instance) -> Result<Value> {
    serde_json::to_value(inst)
        .map_err(|e| PluginError::internal(format!("docker: cannot encode instance data: {e}")))
}

occopus_sdk::export_resource_handler!(Docker);
