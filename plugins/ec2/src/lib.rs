//! `ec2`: the Amazon EC2 resource handler (and any cloud speaking the EC2 Query API).
//!
//! Occopus 1.10's `ec2` section (`endpoint`, `regionname`, `image_id`, `instance_type`,
//! optional `key_name`, `security_group_ids`, `subnet_id`, `tags`, `name`) and auth entry
//! (`accesskey`, `secretkey`). Requests are EC2 Query API calls (version 2016-11-15,
//! form-encoded POSTs) signed with AWS Signature Version 4, sent through the host's `http`
//! import to the section's `endpoint` only.
//!
//! Layout: [`sigv4`] (signing), [`config`] (section, schema, endpoint), [`query`] (wire
//! format, XML, error mapping) and [`ec2`] (the operations over a [`ec2::Transport`]) are
//! plain Rust, unit-tested natively; this file binds them to the host.
//!
//! Must not: log or return credentials, contact anything but the configured endpoint, or
//! keep state between calls (everything later calls need is in the instance data).

pub mod config;
pub mod ec2;
pub mod query;
pub mod sigv4;

use config::Ec2Section;
use ec2::{Client, InstanceData, Transport};
use occopus_sdk::http::{Http, Response};
use occopus_sdk::prelude::*;

/// The host's `http` import and clock.
struct HostTransport;

impl Transport for HostTransport {
    fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<Response> {
        let mut req = Http::post(url).body(body).timeout_ms(timeout_ms);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    }
    fn now_ms(&self) -> u64 {
        occopus_sdk::clock::now_ms()
    }
}

fn client<'a>(
    t: &'a HostTransport,
    endpoint: &str,
    region: &str,
    credentials: Option<&Credentials>,
    type_name: &str,
) -> Result<Client<'a, HostTransport>> {
    let creds = credentials.ok_or_else(|| {
        PluginError::invalid(
            "",
            format!(
                "resource type `{type_name}` needs credentials, but no auth_data entry matched \
                 this section (add one with `type: {type_name}` and `accesskey`/`secretkey`)"
            ),
        )
    })?;
    Client::new(t, endpoint, region, config::key_from(creds)?)
}

/// Client for an existing instance: the endpoint and region it was created at.
fn instance_client<'a>(
    t: &'a HostTransport,
    inst: &InstanceRef,
) -> Result<(Client<'a, HostTransport>, InstanceData)> {
    let data: InstanceData = inst.instance()?;
    let c = client(
        t,
        &data.endpoint,
        &data.region,
        inst.credentials.as_ref(),
        &inst.type_name,
    )?;
    Ok((c, data))
}

fn encode(data: &InstanceData) -> Result<Value> {
    serde_json::to_value(data)
        .map_err(|e| PluginError::internal(format!("ec2: cannot encode instance data: {e}")))
}

/// The `ec2` resource handler.
#[derive(Default)]
pub struct Ec2;

impl ResourceHandler for Ec2 {
    fn metadata(&self) -> Metadata {
        occopus_sdk::metadata!("ec2").handles("ec2", config::schema())
    }

    fn validate(&self, _type_name: &str, section: &Value) -> Result<()> {
        Ec2Section::parse(section).map(drop)
    }

    fn create(&self, req: &CreateRequest) -> Result<Value> {
        let s = Ec2Section::parse(&req.resource)?;
        let t = HostTransport;
        let c = client(
            &t,
            &s.endpoint,
            &s.regionname,
            req.credentials.as_ref(),
            &req.type_name,
        )?;
        encode(&c.create(&s, &req.node, req.context.as_deref())?)
    }

    fn find(&self, req: &CreateRequest) -> Result<Option<Value>> {
        let s = Ec2Section::parse(&req.resource)?;
        let t = HostTransport;
        let c = client(
            &t,
            &s.endpoint,
            &s.regionname,
            req.credentials.as_ref(),
            &req.type_name,
        )?;
        c.find(&req.node)?.as_ref().map(encode).transpose()
    }

    fn state(&self, inst: &InstanceRef) -> Result<ResourceState> {
        let t = HostTransport;
        let (c, data) = instance_client(&t, inst)?;
        c.state(&data)
    }

    fn addresses(&self, inst: &InstanceRef) -> Result<Addresses> {
        let t = HostTransport;
        let (c, data) = instance_client(&t, inst)?;
        c.addresses(&data)
    }

    fn destroy(&self, inst: &InstanceRef) -> Result<()> {
        let t = HostTransport;
        let (c, data) = instance_client(&t, inst)?;
        c.destroy(&data)
    }
}

occopus_sdk::export_resource_handler!(Ec2);
