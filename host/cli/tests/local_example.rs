//! The embedded default example (`examples/default`) and the `local` backend through the
//! `occopus` binary, as a newcomer runs them: real processes, each node on its own
//! loopback address, a private state directory per test. Every process a test starts has
//! its working directory under that state directory, which is how "nothing left behind"
//! is checked.

use occopus_tests::{Desc, Occopus, Run, plugin_subset};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `occopus` with only the plugins the example needs.
fn occopus() -> (Occopus, tempfile::TempDir) {
    let plugins = plugin_subset(&["local", "basic"]);
    (
        Occopus::with_plugin_dirs(vec![plugins.path().to_path_buf()]),
        plugins,
    )
}

fn state_root(o: &Occopus) -> PathBuf {
    o.state.path().join("state")
}

/// Pids of live processes whose working directory is under `root`.
fn processes_under(root: &Path) -> Vec<u32> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            !zombie
                && std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(&root))
        })
        .collect()
}

/// Kills whatever a failed test left running under its state directory.
struct Reaper(PathBuf);
impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in processes_under(&self.0) {
            // SAFETY: signalling a process this test started (its cwd is our temp dir).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}
fn infra_id(build: &Run) -> String {
    build
        .stdout
        .lines()
        .last()
        .expect("build prints the infrastructure id")
        .trim()
        .to_string()
}

fn status_json(o: &Occopus, id: &str) -> (i32, Value) {
    let r = o.run(["status", id, "--output", "json"]);
    let v = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("status printed no JSON ({e}):\n{}\n{}", r.stdout, r.stderr));
    (r.code, v)
}

fn address_of(status: &Value, node: &str) -> String {
    status["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["node"] == node))
        .and_then(|i| i["addresses"]["primary"].as_str())
        .unwrap_or_else(|| panic!("no address for {node}: {status}"))
        .to_string()
}

/// One HTTP/1.0 GET; the body of a 200 answer.
fn get(host: &str, port: u16, path: &str) -> String {
    let mut s = TcpStream::connect((host, port)).unwrap_or_else(|e| panic!("{host}:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{resp}"
    );
    body.to_string()
}

#[test]
fn the_default_example_answers_through_every_tier_and_destroy_leaves_no_process() {
    let (o, _plugins) = occopus();
    let _reaper = Reaper(state_root(&o));
    let build = o.run(["build", "examples/default/infra-default.yaml"]).ok();
    let id = infra_id(&build);
    // The live view names each node as it becomes ready, in dependency order.
    let order: Vec<usize> = ["store ", "api ", "front "]
        .iter()
        .map(|n| {
            build
                .stderr
                .lines()
                .position(|l| l.contains(n) && l.contains("ready"))
                .unwrap_or_else(|| panic!("no ready line for {n}:\n{}", build.stderr))
        })
        .collect();
    assert!(
        order[0] < order[1] && order[1] < order[2],
        "{}",
        build.stderr
    );
    assert!(build.stderr.contains("endpoints:"), "{}", build.stderr);

    let (code, status) = status_json(&o, &id);
    assert_eq!(code, 0, "{status}");
    for i in status["instances"].as_array().unwrap() {
        assert_eq!(i["status"], "ready", "{i}");
    }
    let (store, api, front) = (
        address_of(&status, "store"),
        address_of(&status, "api"),
        address_of(&status, "front"),
    );
    assert!(
        store != api && api != front && store.starts_with("127."),
        "{status}"
    );

    // One request through the front goes through every tier.
    let body: Value = serde_json::from_str(&get(&front, 8080, "/")).unwrap();
    assert_eq!(body["tier"], "front", "{body}");
    assert_eq!(body["api"]["tier"], "api", "{body}");
    assert_eq!(body["api"]["address"], api.as_str(), "{body}");
    assert_eq!(
        body["api"]["message"], "Hello from the key-value store",
        "{body}"
    );
    assert_eq!(body["api"]["store"]["tier"], "store", "{body}");
    assert_eq!(body["api"]["store"]["address"], store.as_str(), "{body}");
    assert_eq!(body["api"]["store"]["variant"], "journal", "{body}");
    let again: Value = serde_json::from_str(&get(&front, 8080, "/")).unwrap();
    assert_eq!(
        again["api"]["visits"], 2,
        "the API counts in the store: {again}"
    );

    // The node's log is one command away.
    let logs = o.run(["logs", &id, "api"]).ok();
    assert!(logs.stdout.contains("api.py"), "{}", logs.stdout);

    // Kill the store's service from outside: status sees it.
    let store_dir = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["node"] == "store")
        .map(|i| i["node_id"].as_str().unwrap().to_string())
        .unwrap();
    let victims: Vec<u32> = processes_under(&state_root(&o))
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("store.py"))
                && std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|d| d.to_string_lossy().contains(&store_dir))
        })
        .collect();
    assert_eq!(victims.len(), 1, "the store's python process");
    // SAFETY: signalling the store process this test's build started.
    assert_eq!(unsafe { libc::kill(victims[0] as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (code, status) = loop {
        let (code, status) = status_json(&o, &id);
        if code != 0 || Instant::now() > deadline {
            break (code, status);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        code, 3,
        "status of a not entirely ready infrastructure: {status}"
    );
    let store_now = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["node"] == "store")
        .unwrap();
    assert_ne!(store_now["status"], "ready", "{store_now}");
    let text = o.run(["status", &id]).expect_code(3);
    assert!(
        text.stdout.contains("killed by signal 9"),
        "{}\n{}",
        text.stdout,
        text.stderr
    );

    o.run(["destroy", &id]).ok();
    let left = processes_under(&state_root(&o));
    assert!(left.is_empty(), "processes left after destroy: {left:?}");
    let list = o.run(["status", "--output", "json"]).ok();
    assert_eq!(list.stdout.trim(), "[]", "{}", list.stdout);
}

#[test]
fn the_filter_selects_the_other_store_implementation() {
    let (o, _plugins) = occopus();
    let _reaper = Reaper(state_root(&o));
    let build = o.run(["build", "examples/default/infra-minimal.yaml"]).ok();
    let id = infra_id(&build);
    let (_, status) = status_json(&o, &id);
    let body: Value = serde_json::from_str(&get(&address_of(&status, "front"), 8080, "/")).unwrap();
    assert_eq!(body["api"]["store"]["variant"], "minimal", "{body}");
    assert_eq!(
        body["api"]["message"], "Hello from the minimal store",
        "{body}"
    );
    o.run(["destroy", &id]).ok();
    assert!(processes_under(&state_root(&o)).is_empty());
}

#[test]
fn a_node_whose_service_exits_fails_the_build_with_its_log_and_is_rolled_back() {
    let (o, _plugins) = occopus();
    let _reaper = Reaper(state_root(&o));
    // The broken service never listens: its health check stays pending until it dies.
    let port = occopus_tests::free_port();
    let d = Desc::new(
        "infra_name: failing\nuser_id: tester\nnodes:\n  - &K { name: keeper, type: sleeper }\n  \
         - &B { name: broken, type: broken }\n  - &A { name: after, type: sleeper }\n\
         dependencies:\n  - [*A, *B]\n",
        &format!(
            "'node_def:sleeper':\n  - resource: {{ type: local, command: 'sleep 300' }}\n\
         'node_def:broken':\n  - resource:\n      type: local\n      \
         command: 'echo broken-marker-line; echo the database is missing >&2; sleep 0.3; exit 3'\n    \
         health_check: {{ ping: false, ports: [{port}] }}\n"
        ),
    );
    let infra = d.infra();
    let r = o
        .run([std::ffi::OsStr::new("build"), infra.as_os_str()])
        .expect_code(1);
    assert!(r.stderr.contains("broken"), "{}", r.stderr);
    assert!(r.stderr.contains("exited with code 3"), "{}", r.stderr);
    assert!(
        r.stderr.contains("broken-marker-line") && r.stderr.contains("the database is missing"),
        "the node's log tail is in the message:\n{}",
        r.stderr
    );
    // `after` depends on the broken node: not attempted, and said once.
    assert!(r.stderr.contains("after"), "{}", r.stderr);
    // Rolled back: no infrastructure, no process.
    let list = o.run(["status", "--output", "json"]).ok();
    assert_eq!(list.stdout.trim(), "[]", "{}", list.stdout);
    let left = processes_under(&state_root(&o));
    assert!(
        left.is_empty(),
        "processes left after the rollback: {left:?}"
    );
}

/// A dependent is staged while its dependency starts (its create prepared and run up to
/// the plugin's first effect), but its process starts only once the dependency is
/// healthy: the dependent checks, as it starts, for a file the dependency writes just
/// before it begins to listen.
#[test]
fn a_staged_dependent_starts_its_process_only_once_its_dependency_is_healthy() {
    let (o, _plugins) = occopus();
    let _reaper = Reaper(state_root(&o));
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("first-is-up");
    let mark = mark.display();
    let port = occopus_tests::free_port();
    let d = Desc::new(
        "infra_name: ordered\nuser_id: tester\nnodes:\n  - &F { name: first, type: first }\n  \
         - &S { name: second, type: second }\ndependencies:\n  - [*S, *F]\n",
        &format!(
            "'node_def:first':\n  - resource:\n      type: local\n      \
             command: 'sleep 0.5; touch {mark}; exec python3 -m http.server {port} --bind \"$OCCOPUS_ADDRESS\"'\n    \
             health_check: {{ ping: false, ports: [{port}] }}\n\
             'node_def:second':\n  - resource:\n      type: local\n      \
             command: 'test -e {mark} || {{ echo started-too-early >&2; exit 7; }}; sleep 300'\n    \
             health_check: {{ ping: false }}\n"
        ),
    );
    let infra = d.infra();
    let r = o.run([
        std::ffi::OsStr::new("build"),
        std::ffi::OsStr::new("--output"),
        std::ffi::OsStr::new("json"),
        infra.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The events say the same: second's create starts after first is ready.
    let events: Vec<Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |event: &str, node: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["node"] == node)
            .unwrap_or_else(|| panic!("no {event} of {node}:\n{}", r.stdout))
    };
    assert!(at("nodeready", "first") < at("nodecreating", "second"));
    let result = events.last().expect("the build result");
    let id = result["infra_id"]
        .as_str()
        .expect("an infra id")
        .to_string();
    o.run(["destroy", &id]).ok();
    assert!(processes_under(&state_root(&o)).is_empty());
}
