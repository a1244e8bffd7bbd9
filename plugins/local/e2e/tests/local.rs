//! The `local` plugin in the real runtime, with real processes on loopback: the component
//! is built on first use (the same `cargo build --profile plugin --target wasm32-wasip2`
//! that `cargo xtask build-plugins --only local` runs) and loaded from a private plugin
//! directory as `local.wasm`, with a private work root. Nothing here talks to anything but
//! 127.0.0.0/8 and processes it started.

use occopus_model::ids::{InfraId, NodeId, NodeName};
use occopus_model::plugin::{
    CreateRequest, InstanceRef, NodeContext, PluginError, PluginHost, ResourceHandler,
    ResourceState,
};
use occopus_model::status::NodeStatus;
use occopus_runtime::{Runtime, RuntimeConfig};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

#[path = "support/component.rs"]
mod component;

/// A runtime with only the `local` plugin (as `local.wasm`) and a private work root. The
/// `local` plugin has the `process` capability without any operator grant.
struct Env {
    rh: Arc<dyn ResourceHandler>,
    /// Process groups started, killed when the test ends however it ends.
    groups: std::sync::Mutex<Vec<u32>>,
    work: TempDir,
    _plugins: TempDir,
    _rt: Runtime,
}

async fn env() -> Env {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(component::path(), plugins.path().join("local.wasm")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        plugin_dirs: vec![plugins.path().to_path_buf()],
        builtin_dirs: false,
        env_plugin_path: false,
        work_root: Some(work.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let rt = Runtime::load(cfg).await.expect("runtime starts");
    let rh = rt
        .resource_handler("local")
        .expect("local handles type `local`");
    Env {
        rh,
        groups: Default::default(),
        work,
        _plugins: plugins,
        _rt: rt,
    }
}

const INFRA: &str = "infra-e2e";

fn node(name: &str, id: &str) -> NodeContext {
    NodeContext {
        infra_id: InfraId::new(INFRA),
        infra_name: "e2e".into(),
        node_name: NodeName::new_unchecked(name),
        node_id: NodeId::new(id),
        user_id: None,
    }
}

fn request(name: &str, id: &str, resource: Value, context: Option<&str>) -> CreateRequest {
    CreateRequest {
        node: node(name, id),
        type_name: "local".into(),
        resource,
        context: context.map(str::to_string),
        attributes: Value::Null,
        credentials: None,
    }
}

fn instance(req: &CreateRequest, data: &Value) -> InstanceRef {
    InstanceRef {
        node: req.node.clone(),
        type_name: "local".into(),
        resource: req.resource.clone(),
        credentials: None,
        instance: data.clone(),
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for pgid in self.groups.lock().unwrap().drain(..) {
            if !group_members(pgid).is_empty() {
                // SAFETY: killing a process group this test started.
                unsafe { libc::killpg(pgid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

impl Env {
    async fn create(&self, req: &CreateRequest) -> Value {
        let data = self.rh.create(req).await.unwrap();
        self.groups.lock().unwrap().push(pid_of(&data));
        data
    }

    fn node_dir(&self, id: &str) -> PathBuf {
        self.work
            .path()
            .canonicalize()
            .unwrap()
            .join(INFRA)
            .join("nodes")
            .join(id)
    }

    /// Poll `state` until it leaves `pending`.
    async fn settle(&self, inst: &InstanceRef) -> ResourceState {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let st = self.rh.state(inst).await.unwrap();
            if st.status != NodeStatus::Pending || Instant::now() > deadline {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------------
// Processes and sockets, seen from outside.

fn pid_of(data: &Value) -> u32 {
    data["process"]["pid"]
        .as_u64()
        .expect("instance data has the pid") as u32
}

/// Processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // state, ppid, pgrp; zombies are not running processes.
        if f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) && f.first() != Some(&"Z") {
            out.push(pid);
        }
    }
    out
}

async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` over HTTP/1.0, the whole answer.
fn http_get(addr: &str, port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{addr}:{port}").parse().unwrap(),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

async fn http_get_eventually(addr: &str, port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(addr, port, path) {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => {
                panic!("no answer from {addr}:{port}{path}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A static file server on the node's own address, its content made by a setup step.
fn web_node(port: u16) -> (Value, String) {
    let resource = json!({
        "type": "local",
        "command": "exec python3 -m http.server --bind \"$OCCOPUS_ADDRESS\" \"$PORT\"",
        "env": {"PORT": port},
        "stop_grace": 2
    });
    let context = "#cloud-config\n\
        packages: [nginx]\n\
        write_files:\n\
        \x20 - path: /conf/secret.txt\n\
        \x20   permissions: '0600'\n\
        \x20   content: s3cret\n\
        \x20 - path: greeting.txt\n\
        \x20   encoding: b64\n\
        \x20   content: aGVsbG8=\n\
        bootcmd:\n\
        \x20 - echo booting\n\
        runcmd:\n\
        \x20 - echo \"$(cat greeting.txt) from $OCCOPUS_NODE_NAME at $OCCOPUS_ADDRESS\" > hello.txt\n\
        \x20 - [sh, -c, 'echo setup done']\n"
        .to_string();
    (resource, context)
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_starts_becomes_ready_is_adopted_and_destroyed() {
    let e = env().await;
    let (resource, context) = web_node(28_081);
    let req = request("web", "node-web", resource, Some(&context));
    assert_eq!(e.rh.find(&req).await.unwrap(), None, "nothing made yet");
    let data = e.create(&req).await;
    let inst = instance(&req, &data);
    let st = e.settle(&inst).await;
    assert_eq!(st.status, NodeStatus::Ready, "{st:?}");

    let addr = e.rh.addresses(&inst).await.unwrap();
    let ip = addr.primary.clone().unwrap();
    assert!(ip.starts_with("127.0.") && ip != "127.0.0.1", "{ip}");
    assert_eq!(addr.private.as_deref(), Some(ip.as_str()));
    let body = http_get_eventually(&ip, 28_081, "/hello.txt").await;
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert!(
        body.ends_with(&format!("hello from web at {ip}\n")),
        "{body}"
    );

    let dir = e.node_dir("node-web");
    use std::os::unix::fs::PermissionsExt;
    let secret = dir.join("conf/secret.txt");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s3cret");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap();
    let boot = log.find("booting").expect("bootcmd output in node.log");
    let setup = log.find("setup done").expect("runcmd output in node.log");
    assert!(boot < setup, "bootcmd runs before runcmd:\n{log}");
    assert!(
        log.contains("occopus-local: service: exec python3"),
        "{log}"
    );

    // The node id is the idempotency key: find and a second create adopt the process.
    assert_eq!(e.rh.find(&req).await.unwrap().as_ref(), Some(&data));
    assert_eq!(e.rh.create(&req).await.unwrap(), data);

    let pgid = pid_of(&data);
    assert!(!group_members(pgid).is_empty());
    e.rh.destroy(&inst).await.unwrap();
    assert!(
        group_members(pgid).is_empty(),
        "destroy left {:?}",
        group_members(pgid)
    );
    assert!(!dir.exists(), "the node directory is removed by default");
    assert!(
        http_get(&ip, 28_081, "/").is_err(),
        "nothing listens any more"
    );
    e.rh.destroy(&inst).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_exiting_non_zero_is_failed_with_the_log_tail() {
    let e = env().await;
    let req = request(
        "bad",
        "node-bad",
        json!({"type": "local", "command": "echo 'config missing: /x/y' >&2; exit 3", "keep_workdir": true}),
        None,
    );
    let data = e.create(&req).await;
    let inst = instance(&req, &data);
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = e.rh.state(&inst).await.unwrap();
        if !matches!(st.status, NodeStatus::Ready | NodeStatus::Pending)
            || Instant::now() > deadline
        {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(st.status, NodeStatus::Failed, "{st:?}");
    let msg = st.message.unwrap();
    assert!(
        msg.starts_with("the service exited with code 3; last lines of node.log:"),
        "{msg}"
    );
    assert!(msg.contains("config missing: /x/y"), "{msg}");

    // A failing setup step stops the start: the service never runs.
    let req = request(
        "bad2",
        "node-bad2",
        json!({"type": "local", "command": "touch started; exec sleep 60", "keep_workdir": true}),
        Some(
            "#cloud-config\nruncmd:\n  - echo first\n  - [sh, -c, 'echo step two broke; exit 4']\n  - echo never\n",
        ),
    );
    let data = e.create(&req).await;
    let st = e.settle(&instance(&req, &data)).await;
    assert_eq!(st.status, NodeStatus::Failed, "{st:?}");
    let msg = st.message.unwrap();
    assert!(
        msg.starts_with("setup step runcmd[1] exited with code 4"),
        "{msg}"
    );
    assert!(msg.contains("step two broke"), "{msg}");
    assert!(!msg.contains("\nnever"), "{msg}");
    let dir = e.node_dir("node-bad2");
    assert!(!dir.join("started").exists());
    e.rh.destroy(&instance(&req, &data)).await.unwrap();
    assert!(dir.join("node.log").is_file(), "keep_workdir keeps the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_files_cannot_escape_the_node_directory() {
    let e = env().await;
    for path in [
        "../escape.txt",
        "/../../escape.txt",
        "a/../../escape.txt",
        ".occopus-run.sh",
    ] {
        let ctx = format!(
            "#cloud-config\nwrite_files:\n  - path: '{path}'\n    content: x\nruncmd: [touch ran]\n"
        );
        let req = request(
            "esc",
            "node-esc",
            json!({"type": "local", "command": "sleep 60"}),
            Some(&ctx),
        );
        let err = e.rh.create(&req).await.unwrap_err();
        assert!(
            matches!(err, PluginError::InvalidConfig { .. }),
            "{path}: {err:?}"
        );
        assert!(
            err.to_string().contains("write_files[0].path"),
            "{path}: {err}"
        );
    }
    // Nothing was written anywhere, and nothing was started.
    let mut found = Vec::new();
    let mut stack = vec![e.work.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n == "escape.txt" || n == "ran" || n == ".occopus-run.sh")
            {
                found.push(p);
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_is_not_ready_and_destroy_stops_background_jobs() {
    let e = env().await;
    let req = request(
        "victim",
        "node-victim",
        json!({"type": "local", "command": "echo $$ > svc.pid; exec sleep 300"}),
        // runcmd leaves a process in the background: it belongs to the node too.
        Some("#cloud-config\nruncmd:\n  - sleep 301 &\n"),
    );
    let data = e.create(&req).await;
    let inst = instance(&req, &data);
    assert_eq!(e.settle(&inst).await.status, NodeStatus::Ready);
    let pgid = pid_of(&data);
    let dir = e.node_dir("node-victim");
    until("svc.pid", 10, || {
        std::fs::read_to_string(dir.join("svc.pid")).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    let svc: i32 = std::fs::read_to_string(dir.join("svc.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    until("the background job", 10, || group_members(pgid).len() >= 4).await;

    // SAFETY: signalling a process this test started.
    assert_eq!(unsafe { libc::kill(svc, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = e.rh.state(&inst).await.unwrap();
        if st.status != NodeStatus::Ready || Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(st.status, NodeStatus::Shutdown, "{st:?}");
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .starts_with("the service was killed by signal 9"),
        "{st:?}"
    );
    // The start script cleaned up the rest of the group when its service died.
    until("the group to empty", 10, || group_members(pgid).is_empty()).await;
    e.rh.destroy(&inst).await.unwrap();

    // Destroy of a live node with a background job leaves nothing behind either.
    let req = request(
        "bg",
        "node-bg",
        json!({"type": "local", "stop_grace": 1}),
        Some(
            "#cloud-config\nruncmd:\n  - sleep 302 &\n  - 'trap \"\" TERM; sleep 303 & echo ignoring TERM'\n",
        ),
    );
    let data = e.create(&req).await;
    let inst = instance(&req, &data);
    let st = e.settle(&inst).await;
    assert_eq!(
        st.status,
        NodeStatus::Ready,
        "no command: ready once setup succeeded: {st:?}"
    );
    let pgid = pid_of(&data);
    until("the background jobs", 10, || group_members(pgid).len() >= 4).await;
    e.rh.destroy(&inst).await.unwrap();
    until("the group to go", 5, || group_members(pgid).is_empty()).await;
    e.rh.destroy(&inst).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_listen_on_the_same_port_on_their_own_addresses() {
    let e = env().await;
    let mut nodes = Vec::new();
    for (name, id) in [("twin-a", "node-twin-a"), ("twin-b", "node-twin-b")] {
        let (resource, context) = web_node(28_082);
        let req = request(name, id, resource, Some(&context));
        let data = e.create(&req).await;
        nodes.push((name, instance(&req, &data)));
    }
    let mut ips = Vec::new();
    for (name, inst) in &nodes {
        assert_eq!(e.settle(inst).await.status, NodeStatus::Ready);
        let ip = e.rh.addresses(inst).await.unwrap().primary.unwrap();
        let body = http_get_eventually(&ip, 28_082, "/hello.txt").await;
        assert!(
            body.ends_with(&format!("hello from {name} at {ip}\n")),
            "{body}"
        );
        ips.push(ip);
    }
    assert_ne!(ips[0], ips[1]);
    // Both still serve: neither took the other's socket.
    for (i, (name, _)) in nodes.iter().enumerate() {
        let body = http_get(&ips[i], 28_082, "/hello.txt").unwrap();
        assert!(body.contains(&format!("hello from {name}")), "{body}");
    }
    for (_, inst) in &nodes {
        e.rh.destroy(inst).await.unwrap();
    }
}
