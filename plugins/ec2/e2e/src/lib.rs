//! Test support for the `ec2` plugin's end-to-end tests: where the EC2 emulator is (from
//! the environment or the `scripts/testenv.sh` env file), the built component, a plugin
//! runtime holding only it, request builders, an independent EC2 client that signs its own
//! requests (with the plugin crate's SigV4 code) to inspect and provoke emulator state,
//! and small loopback servers (a throttling proxy, a connection counter).
//!
//! Must not: talk to anything but loopback; print credentials.

use base64::Engine as _;
use occopus_model::ids::{InfraId, NodeId, NodeName};
use occopus_model::plugin::{CreateRequest, InstanceRef, NodeContext};
use occopus_model::secret::Secret;
use occopus_plugin_ec2::config::Endpoint;
use occopus_plugin_ec2::query;
use occopus_plugin_ec2::sigv4::Key;
use occopus_runtime::{Limits, Runtime, RuntimeConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Set to `1` to skip the emulator tests (they fail otherwise when it is not running).
pub const SKIP_VAR: &str = "OCCOPUS_SKIP_EC2_TESTS";

/// Where the emulator is and the key pair of its test user.
#[derive(Clone)]
pub struct Emulator {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The emulator, or `None` when [`SKIP_VAR`] is `1`. Panics with instructions when it is
/// not configured or does not answer.
pub fn emulator() -> Option<Emulator> {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("skipped: {SKIP_VAR}=1");
        return None;
    }
    let file = occopus_tests::testenv();
    let get = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| file.get(k).cloned())
    };
    let how = format!(
        "start it with `scripts/testenv.sh up moto` (it writes OCCOPUS_TEST_EC2_* into the env \
         file that these tests read), or set {SKIP_VAR}=1 to skip the EC2 emulator tests"
    );
    let (Some(endpoint), Some(access_key), Some(secret_key)) = (
        get("OCCOPUS_TEST_EC2_ENDPOINT"),
        get("OCCOPUS_TEST_EC2_ACCESS_KEY"),
        get("OCCOPUS_TEST_EC2_SECRET_KEY"),
    ) else {
        panic!("the EC2 emulator is not configured: {how}");
    };
    let addr = loopback_addr(&endpoint);
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!("the EC2 emulator at {endpoint} does not answer: {how}");
    }
    Some(Emulator {
        endpoint,
        region: get("OCCOPUS_TEST_EC2_REGION").unwrap_or_else(|| "us-east-1".into()),
        access_key,
        secret_key,
    })
}

/// `http://127.0.0.1:port[/]` → its socket address (the emulator listens on loopback).
pub fn loopback_addr(endpoint: &str) -> SocketAddr {
    let rest = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("the emulator endpoint {endpoint} is not http://"));
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = authority.parse().unwrap_or_else(|e| {
        panic!("the emulator endpoint {endpoint} is not http://<ip>:<port>: {e}")
    });
    assert!(
        addr.ip().is_loopback(),
        "tests only talk to loopback, not {addr}"
    );
    addr
}

/// `<target>/plugins/ec2.wasm`, built (once per test process) from the current source
/// with `cargo xtask build-plugins`.
pub fn plugin_wasm() -> PathBuf {
    occopus_tests::plugin_dir().join("ec2.wasm")
}

/// A runtime that loads only the ec2 plugin (no built-in directories, no environment).
pub async fn runtime() -> (Runtime, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(plugin_wasm(), dir.path().join("ec2.wasm")).expect("copy ec2.wasm");
    let cfg = RuntimeConfig {
        plugin_dirs: vec![dir.path().to_path_buf()],
        builtin_dirs: false,
        env_plugin_path: false,
        max_live_instances: 16,
        limits: Limits {
            timeout_s: 30,
            long_timeout_s: 60,
            ..Limits::default()
        },
        ..RuntimeConfig::default()
    };
    let rt = Runtime::load(cfg).await.expect("runtime starts");
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    (rt, dir)
}

/// A fresh node identity in a fresh infrastructure.
pub fn node(infra_id: &str, name: &str) -> NodeContext {
    NodeContext {
        infra_id: InfraId::new(infra_id),
        infra_name: "ec2-e2e".into(),
        node_name: NodeName::new_unchecked(name),
        node_id: NodeId::new(uuid::Uuid::new_v4().to_string()),
        user_id: None,
    }
}

/// A new unique id (infrastructure ids, markers).
pub fn unique() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Emulator {
    /// The emulator's key pair as an `ec2` auth-data entry.
    pub fn credentials(&self) -> Secret<Value> {
        Secret::new(json!({"accesskey": self.access_key, "secretkey": self.secret_key}))
    }

    /// A minimal `ec2` section pointing at `endpoint` (the emulator or a proxy of it).
    pub fn section(&self, endpoint: &str) -> Value {
        json!({
            "type": "ec2",
            "endpoint": endpoint,
            "regionname": self.region,
            "image_id": "ami-12345678",
            "instance_type": "t3.micro",
            "tags": {"suite": "occopus-ec2-e2e"}
        })
    }

    fn key(&self) -> Key {
        Key {
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            session_token: None,
        }
    }

    /// Call the EC2 API directly (not through the plugin): status and body.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> (u16, String) {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ep = Endpoint::parse(&self.endpoint).expect("endpoint");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let p = query::prepare(&ep, &self.region, &self.key(), action, &params, now);
        let client = reqwest::Client::new();
        let mut req = client.post(&p.url).body(p.body.clone());
        for (k, v) in &p.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{action}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Like [`call`](Self::call), panicking on an error answer.
    pub async fn ok(&self, action: &str, params: &[(&str, &str)]) -> String {
        let (status, body) = self.call(action, params).await;
        assert!(
            (200..300).contains(&status),
            "{action}: HTTP {status}: {body}"
        );
        body
    }

    /// Every instance (any state) carrying tag `key` = `value`.
    pub async fn instances_tagged(&self, key: &str, value: &str) -> Vec<SeenInstance> {
        let name = format!("tag:{key}");
        let xml = self
            .ok(
                "DescribeInstances",
                &[("Filter.1.Name", &name), ("Filter.1.Value.1", value)],
            )
            .await;
        parse_instances(&xml)
    }

    /// One instance by id.
    pub async fn instance(&self, id: &str) -> SeenInstance {
        let xml = self.ok("DescribeInstances", &[("InstanceId.1", id)]).await;
        parse_instances(&xml)
            .into_iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("{id} not described: {xml}"))
    }

    /// The instance's user data, decoded (`DescribeInstanceAttribute userData`).
    pub async fn user_data(&self, id: &str) -> Option<String> {
        let xml = self
            .ok(
                "DescribeInstanceAttribute",
                &[("InstanceId", id), ("Attribute", "userData")],
            )
            .await;
        let doc = roxmltree::Document::parse(&xml).expect("xml");
        let value = doc
            .descendants()
            .find(|n| n.tag_name().name() == "userData")?
            .children()
            .find(|n| n.tag_name().name() == "value")?
            .text()?
            .to_string();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .expect("user data is base64");
        Some(String::from_utf8(bytes).expect("utf-8 user data"))
    }

    /// Launch an instance directly, with these tags; its id.
    pub async fn run_tagged(&self, tags: &[(&str, &str)]) -> String {
        let mut owned: Vec<(String, String)> = vec![
            ("ImageId".into(), "ami-12345678".into()),
            ("InstanceType".into(), "t3.micro".into()),
            ("MinCount".into(), "1".into()),
            ("MaxCount".into(), "1".into()),
            ("TagSpecification.1.ResourceType".into(), "instance".into()),
        ];
        for (i, (k, v)) in tags.iter().enumerate() {
            owned.push((
                format!("TagSpecification.1.Tag.{}.Key", i + 1),
                k.to_string(),
            ));
            owned.push((
                format!("TagSpecification.1.Tag.{}.Value", i + 1),
                v.to_string(),
            ));
        }
        let params: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let xml = self.ok("RunInstances", &params).await;
        parse_instances(&xml).remove(0).id
    }
}

impl Emulator {
    /// A new security group (in the default VPC); its id.
    pub async fn security_group(&self) -> String {
        let name = format!("occopus-e2e-{}", unique());
        let xml = self
            .ok(
                "CreateSecurityGroup",
                &[
                    ("GroupName", &name),
                    ("GroupDescription", "occopus ec2 e2e"),
                ],
            )
            .await;
        first_text(&xml, "groupId").unwrap_or_else(|| panic!("no groupId: {xml}"))
    }

    /// A subnet of the emulator's default VPC; its id.
    pub async fn default_subnet(&self) -> String {
        let xml = self
            .ok(
                "DescribeSubnets",
                &[
                    ("Filter.1.Name", "default-for-az"),
                    ("Filter.1.Value.1", "true"),
                ],
            )
            .await;
        first_text(&xml, "subnetId").unwrap_or_else(|| panic!("no default subnet: {xml}"))
    }
}

/// The text of the first element called `tag`.
pub fn first_text(xml: &str, tag: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.tag_name().name() == tag)
        .and_then(|n| n.text())
        .map(str::to_string)
}

/// An instance as the tests read it, parsed independently of the plugin.
#[derive(Debug, Clone, Default)]
pub struct SeenInstance {
    pub id: String,
    pub state: String,
    pub image_id: String,
    pub instance_type: String,
    pub dns_name: String,
    pub ip_address: String,
    pub private_ip: String,
    pub tags: Vec<(String, String)>,
}

impl SeenInstance {
    pub fn tag(&self, k: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_instances(xml: &str) -> Vec<SeenInstance> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("bad XML ({e}): {xml}"));
    let kid = |n: roxmltree::Node, name: &str| {
        n.children()
            .find(|c| c.tag_name().name() == name)
            .and_then(|c| c.text().map(str::to_string))
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for set in doc
        .descendants()
        .filter(|n| n.tag_name().name() == "instancesSet")
    {
        for item in set.children().filter(|n| n.tag_name().name() == "item") {
            let state = item
                .children()
                .find(|c| c.tag_name().name() == "instanceState")
                .map(|s| kid(s, "name"))
                .unwrap_or_default();
            let tags = item
                .children()
                .find(|c| c.tag_name().name() == "tagSet")
                .map(|t| {
                    t.children()
                        .filter(|n| n.tag_name().name() == "item")
                        .map(|i| (kid(i, "key"), kid(i, "value")))
                        .collect()
                })
                .unwrap_or_default();
            out.push(SeenInstance {
                id: kid(item, "instanceId"),
                state,
                image_id: kid(item, "imageId"),
                instance_type: kid(item, "instanceType"),
                dns_name: kid(item, "dnsName"),
                ip_address: kid(item, "ipAddress"),
                private_ip: kid(item, "privateIpAddress"),
                tags,
            });
        }
    }
    out
}

/// A create request for `node` with `resource`, the cloud-init text and credentials.
pub fn create_request(
    node: &NodeContext,
    resource: Value,
    context: Option<&str>,
    credentials: Option<Secret<Value>>,
) -> CreateRequest {
    CreateRequest {
        node: node.clone(),
        type_name: "ec2".into(),
        resource,
        context: context.map(str::to_string),
        attributes: Value::Null,
        credentials,
    }
}

/// The instance reference of what `create` returned.
pub fn instance_ref(req: &CreateRequest, instance: Value) -> InstanceRef {
    InstanceRef {
        node: req.node.clone(),
        type_name: req.type_name.clone(),
        resource: req.resource.clone(),
        credentials: req.credentials.clone(),
        instance,
    }
}

/// A loopback proxy in front of the emulator that answers the first `throttle` requests
/// itself with EC2's throttling error (HTTP 503 `RequestLimitExceeded`) and forwards the
/// rest byte for byte (the `Host` header, and so the signature, stay valid).
pub struct ThrottleProxy {
    pub addr: SocketAddr,
    pub throttled: Arc<AtomicUsize>,
    pub forwarded: Arc<AtomicUsize>,
}

impl ThrottleProxy {
    pub async fn start(upstream: SocketAddr, throttle: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let throttled = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let (t, f) = (throttled.clone(), forwarded.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (t, f, seen) = (t.clone(), f.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, upstream, throttle, &seen, &t, &f).await;
                });
            }
        });
        Self {
            addr,
            throttled,
            forwarded,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

async fn serve(
    mut conn: TcpStream,
    upstream: SocketAddr,
    throttle: usize,
    seen: &AtomicUsize,
    throttled: &AtomicUsize,
    forwarded: &AtomicUsize,
) -> std::io::Result<()> {
    let Some((head, body)) = read_request(&mut conn).await? else {
        return Ok(());
    };
    if seen.fetch_add(1, Ordering::SeqCst) < throttle {
        throttled.fetch_add(1, Ordering::SeqCst);
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
                   <Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>\
                   </Error></Errors><RequestID>proxy</RequestID></Response>";
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        );
        conn.write_all(resp.as_bytes()).await?;
        return conn.shutdown().await;
    }
    forwarded.fetch_add(1, Ordering::SeqCst);
    // One request per connection: ask both sides to close after it.
    let mut out = String::new();
    for line in head.trim_end().split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(out.as_bytes()).await?;
    up.write_all(&body).await?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await?;
    conn.write_all(&answer).await?;
    conn.shutdown().await
}

/// A loopback listener that only counts the connections it gets.
pub struct Counter {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl Counter {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let c = connections.clone();
        tokio::spawn(async move {
            while let Ok((_conn, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self { addr, connections }
    }
}
