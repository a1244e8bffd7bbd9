//! The resource-handler operations (create/adopt, find, state, addresses, destroy) over a
//! [`Transport`], so they run natively against scripted answers in unit tests and against
//! the host's `http` import in the component.
//!
//! Idempotency: every instance is tagged with the node id at creation
//! (`TagSpecifications`), `RunInstances` carries a client token derived from the node id,
//! and `create` first looks for a live instance with that tag and adopts it.
//! Must not: log or return credentials; retry on its own (the engine retries transient
//! errors with backoff).

use crate::config::{Ec2Section, Endpoint, MAX_USER_DATA, TAG_PREFIX};
use crate::query::{self, Instance};
use crate::sigv4::{Key, hex_sha256};
use base64::Engine as _;
use occopus_sdk::http::Response;
use occopus_sdk::{Addresses, NodeContext, NodeStatus, PluginError, ResourceState, Result};
use serde::{Deserialize, Serialize};

/// Tag holding the infrastructure id.
pub const TAG_INFRA_ID: &str = "occopus:infra-id";
/// Tag holding the node name.
pub const TAG_NODE_NAME: &str = "occopus:node-name";
/// Tag holding the node instance id (the idempotency key).
pub const TAG_NODE_ID: &str = "occopus:node-id";

/// Per-request timeout.
const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// How long after creation an instance that `DescribeInstances` does not show yet is
/// still taken as starting (EC2's reads are eventually consistent).
const VISIBILITY_GRACE_MS: u64 = 5 * 60 * 1000;
/// States in which an instance counts as this node's, for adoption.
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

/// How requests leave the plugin, and what time it is.
pub trait Transport {
    /// POST `body` to `url` with `headers`. Connection failures are transient errors;
    /// answers of any status are `Ok`.
    fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<Response>;
    /// Unix time in milliseconds (signatures carry it; AWS refuses skews over 5 minutes).
    fn now_ms(&self) -> u64;
}

/// What `create` and `find` return; stored by the host and handed back later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceData {
    pub instance_id: String,
    /// Where the instance lives: later calls go there (and the host only lets them if the
    /// section still names that endpoint).
    pub endpoint: String,
    pub region: String,
    /// When the plugin created or adopted it (Unix ms).
    pub created_ms: u64,
    /// Whether it was adopted rather than created by this call.
    #[serde(default)]
    pub adopted: bool,
}

/// An EC2 endpoint with credentials.
pub struct Client<'a, T: Transport> {
    transport: &'a T,
    endpoint: Endpoint,
    region: String,
    key: Key,
}

impl<'a, T: Transport> Client<'a, T> {
    /// A client of `endpoint` in `region`; a bad endpoint URL or region name fails here,
    /// before any request.
    pub fn new(transport: &'a T, endpoint: &str, region: &str, key: Key) -> Result<Self> {
        crate::config::check_region(region)?;
        Ok(Self {
            transport,
            endpoint: Endpoint::parse(endpoint)?,
            region: region.to_string(),
            key,
        })
    }

    /// Call `action`; the answer's XML on success, the mapped error otherwise.
    pub fn call(&self, action: &str, params: &[(String, String)]) -> Result<String> {
        let what = format!("EC2 {action} at {}", self.endpoint.url);
        let p = query::prepare(
            &self.endpoint,
            &self.region,
            &self.key,
            action,
            params,
            self.transport.now_ms(),
        );
        let resp = self
            .transport
            .post(&p.url, p.headers, p.body, REQUEST_TIMEOUT_MS)
            .map_err(|e| e.context(&what))?;
        let body = resp.text();
        if resp.is_success() {
            return Ok(body);
        }
        Err(query::parse_error(resp.status, &body, resp.retry_after_ms()).into_plugin_error(&what))
    }

    /// `DescribeInstances` of one instance id; `None` when EC2 does not know it.
    pub fn describe(&self, instance_id: &str) -> Result<Option<Instance>> {
        let params = [("InstanceId.1".to_string(), instance_id.to_string())];
        match self.call("DescribeInstances", &params) {
            Ok(xml) => Ok(query::parse_instances(&xml)?
                .into_iter()
                .find(|i| i.id == instance_id)),
            Err(PluginError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Live (not shutting down or terminated) instances tagged with `node_id`, oldest
    /// launch first.
    pub fn find_by_node(&self, node_id: &str) -> Result<Vec<Instance>> {
        let mut params = vec![
            ("Filter.1.Name".to_string(), format!("tag:{TAG_NODE_ID}")),
            ("Filter.1.Value.1".to_string(), node_id.to_string()),
            (
                "Filter.2.Name".to_string(),
                "instance-state-name".to_string(),
            ),
        ];
        for (i, s) in LIVE_STATES.iter().enumerate() {
            params.push((format!("Filter.2.Value.{}", i + 1), (*s).to_string()));
        }
        let xml = self.call("DescribeInstances", &params)?;
        let mut found: Vec<Instance> = query::parse_instances(&xml)?
            .into_iter()
            .filter(|i| {
                i.tag(TAG_NODE_ID) == Some(node_id) && LIVE_STATES.contains(&i.state.as_str())
            })
            .collect();
        found.sort_by(|a, b| (&a.launch_time, &a.id).cmp(&(&b.launch_time, &b.id)));
        Ok(found)
    }

    fn data(&self, instance_id: String, adopted: bool) -> InstanceData {
        InstanceData {
            instance_id,
            endpoint: self.endpoint.url.clone(),
            region: self.region.clone(),
            created_ms: self.transport.now_ms(),
            adopted,
        }
    }

    /// The instance already made for this node, if any.
    pub fn find(&self, node: &NodeContext) -> Result<Option<InstanceData>> {
        let found = self.find_by_node(&node.node_id)?;
        if found.len() > 1 {
            occopus_sdk::log::warn(format!(
                "{} live EC2 instances carry node id {}; adopting the oldest, {}",
                found.len(),
                node.node_id,
                found[0].id
            ));
        }
        Ok(found.into_iter().next().map(|i| self.data(i.id, true)))
    }

    /// Create the node's instance, or adopt the one a previous attempt made.
    pub fn create(
        &self,
        section: &Ec2Section,
        node: &NodeContext,
        user_data: Option<&str>,
    ) -> Result<InstanceData> {
        let params = run_params(section, node, user_data)?;
        if let Some(found) = self.find(node)? {
            occopus_sdk::log::info(format!(
                "adopting EC2 instance {} made earlier for node {} ({})",
                found.instance_id,
                node.node_id,
                section.label()
            ));
            return Ok(found);
        }
        let xml = self.call("RunInstances", &params)?;
        let inst = query::parse_instances(&xml)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                PluginError::internal(format!(
                    "EC2 RunInstances at {} answered without an instance: {}",
                    self.endpoint.url,
                    query::snippet(&xml)
                ))
            })?;
        occopus_sdk::log::info(format!(
            "created EC2 instance {} for node {} ({})",
            inst.id,
            node.node_id,
            section.label()
        ));
        Ok(self.data(inst.id, false))
    }

    /// The instance's state, mapped to Occopus's node status.
    pub fn state(&self, data: &InstanceData) -> Result<ResourceState> {
        match self.describe(&data.instance_id)? {
            Some(i) => Ok(map_state(&i)),
            None if self.transport.now_ms().saturating_sub(data.created_ms)
                < VISIBILITY_GRACE_MS =>
            {
                Ok(ResourceState::pending(format!(
                    "EC2 instance {} is not visible yet",
                    data.instance_id
                )))
            }
            None => Ok(ResourceState::with_message(
                NodeStatus::Shutdown,
                format!("EC2 instance {} no longer exists", data.instance_id),
            )),
        }
    }

    /// Where the instance is.
    pub fn addresses(&self, data: &InstanceData) -> Result<Addresses> {
        match self.describe(&data.instance_id)? {
            Some(i) => Ok(addresses(&i)),
            None => Ok(Addresses::none()),
        }
    }

    /// Terminate the instance; one that EC2 no longer knows is already gone.
    pub fn destroy(&self, data: &InstanceData) -> Result<()> {
        let params = [("InstanceId.1".to_string(), data.instance_id.clone())];
        match self.call("TerminateInstances", &params) {
            Ok(_) => {
                occopus_sdk::log::info(format!("terminating EC2 instance {}", data.instance_id));
                Ok(())
            }
            Err(PluginError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The idempotency token of `RunInstances` (at most 64 ASCII characters): the node id, or
/// its SHA-256 when it does not fit.
pub fn client_token(node_id: &str) -> String {
    if !node_id.is_empty() && node_id.len() <= 64 && node_id.bytes().all(|b| b.is_ascii_graphic()) {
        node_id.to_string()
    } else {
        hex_sha256(node_id.as_bytes())
    }
}

/// Occopus's default VM name: `occopus-<infra name>-<infra id>-<node name>-<node id>`,
/// each part cut short.
pub fn vm_name(node: &NodeContext) -> String {
    fn cut(s: &str, n: usize) -> &str {
        s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
    }
    format!(
        "occopus-{}-{}-{}-{}",
        cut(&node.infra_name, 18),
        cut(&node.infra_id, 8),
        cut(&node.node_name, 18),
        cut(&node.node_id, 8)
    )
}

/// The tags of a new instance: the plugin's own, then the user's (a user `Name` replaces
/// the default one).
pub fn tags(section: &Ec2Section, node: &NodeContext) -> Result<Vec<(String, String)>> {
    let user = section.user_tags()?;
    let mut tags = vec![
        (TAG_INFRA_ID.to_string(), node.infra_id.clone()),
        (TAG_NODE_NAME.to_string(), node.node_name.clone()),
        (TAG_NODE_ID.to_string(), node.node_id.clone()),
    ];
    debug_assert!(tags.iter().all(|(k, _)| k.starts_with(TAG_PREFIX)));
    if !user.iter().any(|(k, _)| k == "Name") {
        tags.push(("Name".to_string(), vm_name(node)));
    }
    tags.extend(user);
    Ok(tags)
}

/// `RunInstances` parameters for one node.
pub fn run_params(
    section: &Ec2Section,
    node: &NodeContext,
    user_data: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let p = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut params = vec![
        p("ImageId", &section.image_id),
        p("InstanceType", &section.instance_type),
        p("MinCount", "1"),
        p("MaxCount", "1"),
        p("ClientToken", &client_token(&node.node_id)),
    ];
    if let Some(k) = &section.key_name {
        params.push(p("KeyName", k));
    }
    if let Some(s) = &section.subnet_id {
        params.push(p("SubnetId", s));
    }
    for (i, g) in section.security_group_ids.iter().enumerate() {
        params.push((format!("SecurityGroupId.{}", i + 1), g.clone()));
    }
    if let Some(ud) = user_data.filter(|u| !u.is_empty()) {
        if ud.len() > MAX_USER_DATA {
            return Err(PluginError::invalid(
                "",
                format!(
                    "the rendered cloud-init user data has {} bytes; EC2 accepts at most {MAX_USER_DATA}",
                    ud.len()
                ),
            ));
        }
        params.push(p(
            "UserData",
            &base64::engine::general_purpose::STANDARD.encode(ud.as_bytes()),
        ));
    }
    params.push(p("TagSpecification.1.ResourceType", "instance"));
    for (i, (k, v)) in tags(section, node)?.into_iter().enumerate() {
        params.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k));
        params.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v));
    }
    Ok(params)
}

/// EC2 instance state → node status (Occopus's mapping): pending → pending, running →
/// ready, shutting-down/terminated → shutdown, stopping/stopped → temp-failed; anything
/// else is unknown. The message names the state and EC2's reason.
pub fn map_state(i: &Instance) -> ResourceState {
    let status = match i.state.as_str() {
        "pending" => NodeStatus::Pending,
        "running" => NodeStatus::Ready,
        "shutting-down" | "terminated" => NodeStatus::Shutdown,
        "stopping" | "stopped" => NodeStatus::TempFailed,
        _ => NodeStatus::Unknown,
    };
    let state = if i.state.is_empty() {
        "unknown"
    } else {
        &i.state
    };
    let mut message = format!("EC2 instance {} is {state}", i.id);
    if let Some(r) = i.state_reason.as_ref().or(i.transition_reason.as_ref()) {
        message.push_str(": ");
        message.push_str(r);
    }
    ResourceState::with_message(status, message)
}

/// Public DNS name, public IP, private IP (non-empty, without repeats); primary is the
/// first of them, private the private IP.
pub fn addresses(i: &Instance) -> Addresses {
    let mut all: Vec<String> = Vec::new();
    for a in [&i.public_dns, &i.public_ip, &i.private_ip]
        .into_iter()
        .flatten()
    {
        if !a.is_empty() && !all.contains(a) {
            all.push(a.clone());
        }
    }
    Addresses {
        primary: all.first().cloned(),
        private: i.private_ip.clone(),
        all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::RefCell;

    /// Scripted EC2: answers in order, records the form bodies it got.
    struct Script {
        answers: RefCell<Vec<(u16, String)>>,
        seen: RefCell<Vec<String>>,
        now: u64,
    }

    impl Script {
        fn new(answers: &[(u16, &str)]) -> Self {
            Self {
                answers: RefCell::new(
                    answers
                        .iter()
                        .rev()
                        .map(|(s, b)| (*s, b.to_string()))
                        .collect(),
                ),
                seen: RefCell::new(Vec::new()),
                now: 1_764_000_000_000,
            }
        }
        fn seen(&self) -> Vec<String> {
            self.seen.borrow().clone()
        }
    }

    impl Transport for Script {
        fn post(
            &self,
            url: &str,
            headers: Vec<(String, String)>,
            body: Vec<u8>,
            _t: u64,
        ) -> Result<Response> {
            assert_eq!(url, "https://ec2.example.com/");
            assert!(headers.iter().any(|(k, v)| k == "Authorization" && v.contains("/eu-west-1/ec2/aws4_request")));
            self.seen
                .borrow_mut()
                .push(String::from_utf8(body).unwrap());
            let (status, body) = self
                .answers
                .borrow_mut()
                .pop()
                .expect("an answer is scripted");
            Ok(Response::new(status, vec![], body))
        }
        fn now_ms(&self) -> u64 {
            self.now
        }
    }

    fn key() -> Key {
        Key {
            access_key: "AKID".into(),
            secret_key: "SECRET-XYZ".into(),
            session_token: None,
        }
    }

    fn section() -> Ec2Section {
        Ec2Section::parse(&json!({
            "type": "ec2",
            "endpoint": "https://ec2.example.com",
            "regionname": "eu-west-1",
            "image_id": "ami-1",
            "instance_type": "t3.micro",
            "key_name": "k",
            "security_group_ids": ["sg-1", "sg-2"],
            "subnet_id": "subnet-1",
            "tags": {"owner": "me"}
        }))
        .unwrap()
    }

    fn node() -> NodeContext {
        NodeContext {
            infra_id: "0f0e0d0c-aaaa-bbbb-cccc-000000000001".into(),
            infra_name: "hello-infra".into(),
            node_name: "web".into(),
            node_id: "3c9a51f2-1111-2222-3333-444455556666".into(),
            user_id: None,
        }
    }

    fn instance_xml(id: &str, state: &str) -> String {
        format!(
            "<X><instancesSet><item><instanceId>{id}</instanceId><instanceState><name>{state}</name></instanceState>\
             <launchTime>2026-01-01T00:00:00Z</launchTime>\
             <tagSet><item><key>occopus:node-id</key><value>3c9a51f2-1111-2222-3333-444455556666</value></item></tagSet>\
             </item></instancesSet></X>"
        )
    }

    const EMPTY: &str = "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>";

    fn form(body: &str) -> Vec<(String, String)> {
        body.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (decode(k), decode(v))
            })
            .collect()
    }

    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn get<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
        f.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn create_looks_for_the_node_then_runs_one_tagged_instance() {
        let t = Script::new(&[(200, EMPTY), (200, &instance_xml("i-new", "pending"))]);
        let c = Client::new(&t, "https://ec2.example.com", "eu-west-1", key()).unwrap();
        let d = c
            .create(&section(), &node(), Some("#cloud-config\nruncmd: [true]\n"))
            .unwrap();
        assert_eq!(d.instance_id, "i-new");
        assert!(!d.adopted);
        assert_eq!(d.endpoint, "https://ec2.example.com/");
        let seen = t.seen();
        assert_eq!(seen.len(), 2);
        let find = form(&seen[0]);
        assert_eq!(get(&find, "Action"), Some("DescribeInstances"));
        assert_eq!(get(&find, "Filter.1.Name"), Some("tag:occopus:node-id"));
        assert_eq!(
            get(&find, "Filter.1.Value.1"),
            Some(node().node_id.as_str())
        );
        assert_eq!(get(&find, "Filter.2.Name"), Some("instance-state-name"));
        let run = form(&seen[1]);
        assert_eq!(get(&run, "Action"), Some("RunInstances"));
        assert_eq!(get(&run, "Version"), Some("2016-11-15"));
        assert_eq!(get(&run, "ImageId"), Some("ami-1"));
        assert_eq!(get(&run, "InstanceType"), Some("t3.micro"));
        assert_eq!(get(&run, "MinCount"), Some("1"));
        assert_eq!(get(&run, "MaxCount"), Some("1"));
        assert_eq!(get(&run, "ClientToken"), Some(node().node_id.as_str()));
        assert_eq!(get(&run, "KeyName"), Some("k"));
        assert_eq!(get(&run, "SubnetId"), Some("subnet-1"));
        assert_eq!(get(&run, "SecurityGroupId.2"), Some("sg-2"));
        assert_eq!(
            get(&run, "UserData"),
            Some(
                base64::engine::general_purpose::STANDARD
                    .encode("#cloud-config\nruncmd: [true]\n")
                    .as_str()
            )
        );
        assert_eq!(
            get(&run, "TagSpecification.1.ResourceType"),
            Some("instance")
        );
        let tags: Vec<(String, String)> = (1..)
            .map_while(|i| {
                Some((
                    get(&run, &format!("TagSpecification.1.Tag.{i}.Key"))?.to_string(),
                    get(&run, &format!("TagSpecification.1.Tag.{i}.Value"))?.to_string(),
                ))
            })
            .collect();
        assert_eq!(
            tags,
            vec![
                ("occopus:infra-id".to_string(), node().infra_id),
                ("occopus:node-name".into(), "web".into()),
                ("occopus:node-id".into(), node().node_id),
                (
                    "Name".into(),
                    "occopus-hello-infra-0f0e0d0c-web-3c9a51f2".into()
                ),
                ("owner".into(), "me".into()),
            ]
        );
        assert!(seen.iter().all(|b| !b.contains("SECRET-XYZ")));
    }

    #[test]
    fn create_adopts_what_an_earlier_attempt_made() {
        let t = Script::new(&[(200, &instance_xml("i-old", "running"))]);
        let c = Client::new(&t, "https://ec2.example.com", "eu-west-1", key()).unwrap();
        let d = c.create(&section(), &node(), None).unwrap();
        assert_eq!(d.instance_id, "i-old");
        assert!(d.adopted);
        assert_eq!(t.seen().len(), 1, "no RunInstances");
    }

    #[test]
    fn bad_sections_fail_before_any_request() {
        let t = Script::new(&[]);
        let c = Client::new(&t, "https://ec2.example.com", "eu-west-1", key()).unwrap();
        let big = "x".repeat(MAX_USER_DATA + 1);
        let e = c.create(&section(), &node(), Some(&big)).unwrap_err();
        assert!(e.to_string().contains("16384"), "{e}");
        assert!(t.seen().is_empty());
    }

    #[test]
    fn throttling_is_transient_and_nothing_is_created() {
        let throttle = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>";
        let t = Script::new(&[(503, throttle)]);
        let c = Client::new(&t, "https://ec2.example.com", "eu-west-1", key()).unwrap();
        let e = c.create(&section(), &node(), None).unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        assert!(e.to_string().contains("RequestLimitExceeded"), "{e}");
        assert_eq!(t.seen().len(), 1);
    }

    #[test]
    fn state_mapping_follows_occopus() {
        for (ec2, status) in [
            ("pending", NodeStatus::Pending),
            ("running", NodeStatus::Ready),
            ("shutting-down", NodeStatus::Shutdown),
            ("terminated", NodeStatus::Shutdown),
            ("stopping", NodeStatus::TempFailed),
            ("stopped", NodeStatus::TempFailed),
            ("rebooting?", NodeStatus::Unknown),
        ] {
            let i = Instance {
                id: "i-1".into(),
                state: ec2.into(),
                state_reason: Some("Client.UserInitiatedShutdown: bye".into()),
                ..Instance::default()
            };
            let s = map_state(&i);
            assert_eq!(s.status, status, "{ec2}");
            let m = s.message.unwrap();
            assert!(
                m.contains(ec2) && m.contains("Client.UserInitiatedShutdown: bye"),
                "{m}"
            );
        }
    }

    #[test]
    fn vanished_instances_are_pending_at_first_then_shut_down() {
        let not_found = "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>nope</Message></Error></Errors></Response>";
        let t = Script::new(&[(400, not_found), (400, not_found)]);
        let c = Client::new(&t, "https://ec2.example.com", "eu-west-1", key()).unwrap();
        let mut d = InstanceData {
            instance_id: "i-1".into(),
            endpoint: "https://ec2.example.com/".into(),
            region: "eu-west-1".into(),
            created_ms: t.now - 1000,
            adopted: false,
        };
        assert_eq!(c.state(&d).unwrap().status, NodeStatus::Pending);
        d.created_ms = t.now - VISIBILITY_GRACE_MS - 1;
        assert_eq!(c.state(&d).unwrap().status, NodeStatus::Shutdown);
    }

    #[test]
    fn destroy_is_idempotent() {
        let not_found = "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>nope</Message></Error></Errors></Response>";
        let t = Script::new(&[
            (200, "<TerminateInstancesResponse/>"),
            (400, not_found),
            (
                401,
                "<Response><Errors><Error><Code>AuthFailure</Code><Message>no</Message></Error></Errors></Response>",
            ),
        ]);
        let c = Client::new(&t, "https://ec2.example.com", "eu-west-1", key()).unwrap();
        let d = InstanceData {
            instance_id: "i-1".into(),
            endpoint: "https://ec2.example.com/".into(),
            region: "eu-west-1".into(),
            created_ms: 0,
            adopted: false,
        };
        c.destroy(&d).unwrap();
        c.destroy(&d).unwrap();
        let e = c.destroy(&d).unwrap_err();
        assert!(
            !e.is_retryable() && e.to_string().contains("AuthFailure"),
            "{e}"
        );
        assert_eq!(
            get(&form(&t.seen()[0]), "Action"),
            Some("TerminateInstances")
        );
        assert_eq!(get(&form(&t.seen()[0]), "InstanceId.1"), Some("i-1"));
    }

    #[test]
    fn addresses_prefer_the_public_dns_name() {
        let i = Instance {
            public_dns: Some("ec2-54-1-2-3.compute-1.amazonaws.com".into()),
            public_ip: Some("54.1.2.3".into()),
            private_ip: Some("10.0.0.6".into()),
            ..Instance::default()
        };
        let a = addresses(&i);
        assert_eq!(
            a.primary.as_deref(),
            Some("ec2-54-1-2-3.compute-1.amazonaws.com")
        );
        assert_eq!(a.private.as_deref(), Some("10.0.0.6"));
        assert_eq!(a.all.len(), 3);
        let private_only = Instance {
            private_ip: Some("10.0.0.6".into()),
            ..Instance::default()
        };
        assert_eq!(addresses(&private_only), Addresses::single("10.0.0.6"));
    }

    #[test]
    fn client_tokens_fit_ec2s_limit() {
        assert_eq!(client_token("abc-123"), "abc-123");
        let long = "n".repeat(65);
        assert_eq!(client_token(&long).len(), 64);
        assert_ne!(client_token(&long), client_token(&"n".repeat(66)));
        assert_eq!(client_token("with space").len(), 64);
    }
}
