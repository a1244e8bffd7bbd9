//! Shared support of the docker end-to-end tests: finding the test engine (or failing
//! with instructions), a small Engine API client, tiny `FROM scratch` busybox images built
//! through the API from a tar context made here, the built `docker.wasm` loaded into the
//! real runtime, request builders, and a guard that removes everything a test made on
//! the engine (by the infrastructure-id label) even when the test fails.
//!
//! Tests reach containers only through ports published on 127.0.0.1 or from other
//! containers on networks the tests created.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use occopus_model::ids::{InfraId, NodeId, NodeName};
use occopus_model::plugin::{CreateRequest, InstanceRef, NodeContext, ResourceHandler};
use occopus_runtime::{Limits, PluginGrant, Runtime, RuntimeConfig};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Set to `1` to skip (not fail) the tests when no engine is available. CI never sets it.
pub const SKIP_ENV: &str = "OCCOPUS_SKIP_DOCKER_TESTS";
/// The engine endpoint; otherwise read from the test environment's env file.
pub const ENDPOINT_ENV: &str = "OCCOPUS_TEST_DOCKER_ENDPOINT";

pub use occopus_tests::workspace_root;

/// The test engine's endpoint, or `None` when the tests are to be skipped. Panics with
/// instructions when there is no engine and skipping was not asked for.
pub fn endpoint() -> Option<String> {
    static EP: OnceLock<Result<String, String>> = OnceLock::new();
    let r = EP.get_or_init(|| {
        let ep = std::env::var(ENDPOINT_ENV).ok().filter(|s| !s.is_empty()).or_else(|| {
            occopus_tests::testenv().remove(ENDPOINT_ENV)
        });
        let Some(ep) = ep else {
            return Err(format!("{ENDPOINT_ENV} is not set and the test environment's env file does not name an engine"));
        };
        // A thread of its own: callers may be inside a runtime already.
        let probe = ep.clone();
        let answer = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(Api::new(&probe).request("GET", "/_ping", None))
        })
        .join()
        .expect("probe thread");
        match answer {
            Ok((200, _)) => Ok(ep),
            Ok((s, b)) => Err(format!("the engine at {ep} answered /_ping with HTTP {s}: {}", String::from_utf8_lossy(&b))),
            Err(e) => Err(format!("no Docker Engine answers at {ep}: {e}")),
        }
    });
    match r {
        Ok(ep) => Some(ep.clone()),
        Err(why) if std::env::var(SKIP_ENV).as_deref() == Ok("1") => {
            eprintln!("skipping docker test ({SKIP_ENV}=1): {why}");
            None
        }
        Err(why) => panic!(
            "{why}.\nThese tests need a Docker Engine: run `scripts/testenv.sh up docker` (it starts one and writes \
             {ENDPOINT_ENV} to its env file), or set {ENDPOINT_ENV}=unix:///path/to/docker.sock (or tcp://127.0.0.1:PORT). \
             To skip them instead, set {SKIP_ENV}=1."
        ),
    }
}

/// Return early from a test when the engine is missing and skipping was asked for.
#[macro_export]
macro_rules! engine_or_skip {
    () => {
        match common::endpoint() {
            Some(ep) => ep,
            None => return,
        }
    };
}

/// A minimal Engine API client (HTTP/1.1 over the unix socket or TCP).
#[derive(Clone, Debug)]
pub struct Api {
    endpoint: String,
}

impl Api {
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_string(),
        }
    }

    /// Send one request (`path` without the API version prefix for `/_ping`, with it
    /// otherwise added by [`Api::call`]). Returns status and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<(u16, Vec<u8>), String> {
        let io: Box<dyn Io> = if let Some(sock) = self.endpoint.strip_prefix("unix://") {
            Box::new(
                tokio::net::UnixStream::connect(sock)
                    .await
                    .map_err(|e| format!("connect {sock}: {e}"))?,
            )
        } else {
            let hp = self
                .endpoint
                .split_once("://")
                .map(|(_, r)| r.trim_end_matches('/'))
                .unwrap_or(&self.endpoint);
            Box::new(
                tokio::net::TcpStream::connect(hp)
                    .await
                    .map_err(|e| format!("connect {hp}: {e}"))?,
            )
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "docker");
        let payload = match body {
            Some((bytes, ct)) => {
                b = b.header("Content-Type", ct);
                bytes
            }
            None => Vec::new(),
        };
        let req = b
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok((status, body))
    }

    /// `METHOD /v1.41<path>`, panicking on transport errors.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
        let body = body.map(|b| (b.to_string().into_bytes(), "application/json"));
        self.request(method, &format!("/v1.41{path}"), body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET` a JSON document, `None` on 404.
    pub async fn get(&self, path: &str) -> Option<Value> {
        let (s, b) = self.call("GET", path, None).await;
        match s {
            200 => Some(serde_json::from_slice(&b).unwrap_or_else(|e| panic!("GET {path}: {e}"))),
            404 => None,
            _ => panic!("GET {path}: HTTP {s}: {}", String::from_utf8_lossy(&b)),
        }
    }

    pub async fn inspect(&self, id: &str) -> Option<Value> {
        self.get(&format!("/containers/{id}/json")).await
    }

    /// Containers (any state) labelled `key=value`.
    pub async fn containers_labelled(&self, key: &str, value: &str) -> Vec<Value> {
        let f = enc(&json!({"label": [format!("{key}={value}")]}).to_string());
        match self
            .get(&format!("/containers/json?all=1&filters={f}"))
            .await
        {
            Some(Value::Array(a)) => a,
            other => panic!("listing containers: {other:?}"),
        }
    }

    pub async fn volumes_labelled(&self, key: &str, value: &str) -> Vec<String> {
        let f = enc(&json!({"label": [format!("{key}={value}")]}).to_string());
        let v = self
            .get(&format!("/volumes?filters={f}"))
            .await
            .unwrap_or_default();
        v["Volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["Name"].as_str().map(str::to_string))
            .collect()
    }

    /// Build an image from a tar context; panics with the build output on failure.
    pub async fn build(&self, tag: &str, context: Vec<u8>) {
        let path = format!("/v1.41/build?t={}&rm=1&forcerm=1", enc(tag));
        let (s, b) = self
            .request("POST", &path, Some((context, "application/x-tar")))
            .await
            .unwrap_or_else(|e| panic!("building {tag}: {e}"));
        let text = String::from_utf8_lossy(&b);
        assert!(
            s == 200 && !text.contains("\"error\""),
            "building {tag}: HTTP {s}: {text}"
        );
    }

    pub async fn remove_image(&self, reference: &str) {
        let _ = self
            .call("DELETE", &format!("/images/{reference}?force=1"), None)
            .await;
    }

    /// The host port published for `port/tcp` on 127.0.0.1.
    pub async fn published_port(&self, id: &str, port: u16) -> u16 {
        let c = self.inspect(id).await.expect("container exists");
        let b = &c["NetworkSettings"]["Ports"][format!("{port}/tcp")][0];
        assert_eq!(b["HostIp"], "127.0.0.1", "published on loopback only: {b}");
        b["HostPort"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .expect("host port")
    }

    /// Output of a container (multiplexed stream decoded).
    pub async fn logs(&self, id: &str) -> String {
        let (_, b) = self
            .call(
                "GET",
                &format!("/containers/{id}/logs?stdout=1&stderr=1"),
                None,
            )
            .await;
        let mut out = Vec::new();
        let mut rest = &b[..];
        while rest.len() >= 8 && rest[1..4] == [0, 0, 0] {
            let n = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let end = (8 + n).min(rest.len());
            out.extend_from_slice(&rest[8..end]);
            rest = &rest[end..];
        }
        out.extend_from_slice(rest);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Remove every container, the network and every volume of an infrastructure.
    pub async fn purge_infra(&self, infra_id: &str) {
        for c in self.containers_labelled("occopus.infra-id", infra_id).await {
            if let Some(id) = c["Id"].as_str() {
                let _ = self
                    .call("DELETE", &format!("/containers/{id}?force=1&v=1"), None)
                    .await;
            }
        }
        let _ = self
            .call("DELETE", &format!("/networks/occopus-{infra_id}"), None)
            .await;
        for v in self.volumes_labelled("occopus.infra-id", infra_id).await {
            let _ = self.call("DELETE", &format!("/volumes/{v}"), None).await;
        }
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A ustar archive of `(path, contents, mode)` entries.
pub fn tar(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data, mode) in entries {
        let mut h = [0u8; 512];
        assert!(path.len() < 100, "tar path too long: {path}");
        h[..path.len()].copy_from_slice(path.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = width - 1);
            h[at..at + width].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(*mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 1_700_000_000);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// The static busybox binary the images are made of.
pub fn busybox() -> Vec<u8> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if let Ok(b) = std::fs::read(p) {
            return b;
        }
    }
    panic!(
        "no static busybox at /bin/busybox: `scripts/testenv.sh up docker` installs it (Debian package busybox-static)"
    );
}

/// Build `FROM scratch` + busybox + `files` as `tag`, with `/bin/sh` and the usual
/// applets linked, and `cmd` as the default command (JSON array text).
pub async fn build_busybox_image(api: &Api, tag: &str, files: &[(&str, &[u8], u32)], cmd: &str) {
    let mut dockerfile = String::from(
        "FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    );
    let mut entries: Vec<(&str, &[u8], u32)> = Vec::new();
    let bb = busybox();
    entries.push(("bin/busybox", &bb, 0o755));
    for (p, data, mode) in files {
        entries.push((p, data, *mode));
        dockerfile.push_str(&format!("COPY {p} /{p}\n"));
    }
    dockerfile.push_str(&format!("CMD {cmd}\n"));
    entries.push(("Dockerfile", dockerfile.as_bytes(), 0o644));
    api.build(tag, tar(&entries)).await;
}

/// The built plugin: `<target>/plugins/docker.wasm`, built once per test process with
/// `cargo xtask build-plugins` (the CLI tests need the `basic` health checker too).
pub fn plugin_wasm() -> PathBuf {
    occopus_tests::plugin_dir().join("docker.wasm")
}

/// The `occopus` binary (`<target>/debug/occopus`), built once per test process. It finds
/// the plugins of `<target>/plugins` as built-in ones.
pub fn occopus_bin() -> PathBuf {
    plugin_wasm();
    occopus_tests::occopus_bin()
}

/// The files under `dir` as `(relative path, contents, mode)`, for [`tar`].
pub fn dir_entries(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>, u32)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                out.push((rel, std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// The runtime with only the docker plugin, `grants` as the operator's `plugins.docker`.
pub async fn runtime_with(grant: Option<PluginGrant>) -> Runtime {
    let mut plugins = std::collections::BTreeMap::new();
    if let Some(g) = grant {
        plugins.insert("docker".to_string(), g);
    }
    let cfg = RuntimeConfig {
        plugin_dirs: vec![plugin_wasm()],
        builtin_dirs: false,
        env_plugin_path: false,
        plugins,
        limits: Limits {
            timeout_s: 30,
            long_timeout_s: 120,
            ..Limits::default()
        },
        max_live_instances: 32,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::load(cfg).await.expect("runtime starts");
    assert!(
        rt.load_errors().is_empty(),
        "plugin load errors: {:?}",
        rt.load_errors()
    );
    rt
}

pub async fn handler(rt: &Runtime) -> Arc<dyn ResourceHandler> {
    use occopus_model::plugin::PluginHost;
    rt.resource_handler("docker").expect("docker plugin loaded")
}

/// A fresh infrastructure id, unique across runs and parallel tests.
pub fn infra_id(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "e2e-{test}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn node(infra: &str, name: &str, id: &str) -> NodeContext {
    NodeContext {
        infra_id: InfraId::new(infra),
        infra_name: "docker-e2e".into(),
        node_name: NodeName::new_unchecked(name),
        node_id: NodeId::new(id),
        user_id: None,
    }
}

pub fn create_req(node: NodeContext, resource: Value, attributes: Value) -> CreateRequest {
    CreateRequest {
        node,
        type_name: "docker".into(),
        resource,
        context: None,
        attributes,
        credentials: None,
    }
}

pub fn inst_ref(req: &CreateRequest, instance: Value) -> InstanceRef {
    InstanceRef {
        node: req.node.clone(),
        type_name: "docker".into(),
        resource: req.resource.clone(),
        credentials: None,
        instance,
    }
}

/// Poll `f` every 100 ms until it returns `Some`, for at most `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes everything of an infrastructure from the engine when dropped.
pub struct Purge {
    pub api: Api,
    pub infra: String,
    pub images: Vec<String>,
}

impl Drop for Purge {
    fn drop(&mut self) {
        let api = self.api.clone();
        let infra = self.infra.clone();
        let images = std::mem::take(&mut self.images);
        // A fresh thread: the test's runtime may be shutting down or panicking.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                api.purge_infra(&infra).await;
                for i in images {
                    api.remove_image(&i).await;
                }
            });
        })
        .join();
    }
}

/// Fetch `http://127.0.0.1:<port><path>` (loopback only) and return status and body.
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::builder()
        .uri(path)
        .header("Host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

impl Api {
    /// The filesystem of `image` as a tarball, as `docker export` writes it.
    pub async fn export_rootfs(&self, image: &str) -> Vec<u8> {
        let (s, b) = self
            .call("POST", "/containers/create", Some(json!({"Image": image})))
            .await;
        assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
        let made: Value = serde_json::from_slice(&b).unwrap();
        let id = made["Id"].as_str().unwrap().to_string();
        let (s, rootfs) = self
            .call("GET", &format!("/containers/{id}/export"), None)
            .await;
        self.call("DELETE", &format!("/containers/{id}?force=1"), None)
            .await;
        assert_eq!(s, 200, "exporting {image}");
        rootfs
    }
}

/// Serve `files` (path → body) over HTTP on 127.0.0.1; returns the base URL
/// (`http://127.0.0.1:PORT`) and a counter of requests answered 200.
pub async fn serve(
    files: std::collections::HashMap<String, Vec<u8>>,
) -> (String, Arc<std::sync::atomic::AtomicU32>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = hits.clone();
    let files = Arc::new(files);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let files = files.clone();
            let hits = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body): (&str, &[u8]) = match files.get(&path) {
                    Some(b) => {
                        hits.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", b)
                    }
                    None => ("404 Not Found", b"not found\n"),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), hits)
}

/// `occopus <args>` with its own state directory; panics with the output unless it
/// succeeds. Returns stdout.
pub fn occopus(state_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(occopus_bin())
        .env("OCCOPUS_STATE_DIR", state_dir)
        .env_remove("OCCOPUS_CONFIG")
        .env_remove("OCCOPUS_PLUGIN_PATH")
        .args(args)
        .output()
        .expect("running occopus");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "occopus {} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Build the example's image through the API, the way `build-image.sh` does.
pub async fn build_example_image(api: &Api) {
    let dir = workspace_root().join("examples/docker-multi/image");
    let mut files = dir_entries(&dir);
    files.push(("busybox".into(), busybox(), 0o755));
    let entries: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(p, b, m)| (p.as_str(), b.as_slice(), *m))
        .collect();
    api.build("occopus-example/tiers:1", tar(&entries)).await;
}
