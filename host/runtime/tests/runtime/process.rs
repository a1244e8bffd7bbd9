//! Local processes: through the `fixture-process` plugin (spawn detached, status from a
//! new runtime, kill, release) and directly against the real host services (path escapes,
//! process groups, exit codes, loopback allocation).

use crate::common::*;
use occopus_model::plugin::{PluginError, PluginHost};
use occopus_model::status::NodeStatus;
use occopus_runtime::host::{HostServices, NodeScope, ProcessHandle, ProcessStatus, SpawnRequest};
use occopus_runtime::{PluginGrant, RealHost, Runtime};
use serde_json::json;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn grant_process(c: &mut occopus_runtime::RuntimeConfig, root: &Path) {
    c.work_root = Some(root.to_path_buf());
    c.plugins.insert(
        "fixture-process".into(),
        PluginGrant {
            process: Some(true),
            ..Default::default()
        },
    );
}

/// `(pgrp, session)` of a live process.
fn group_and_session(pid: u32) -> Option<(u32, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn group_gone(pgid: u32) -> bool {
    // SAFETY: signal 0 only tests for existence.
    unsafe { libc::killpg(pgid as libc::pid_t, 0) == -1 }
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_detached_then_status_and_destroy_from_a_new_runtime() {
    let root = tempfile::tempdir().unwrap();
    let (rt, dir) = load_with(&["process"], |c| grant_process(c, root.path())).await;
    let rh = rt.resource_handler("fixture-process").unwrap();
    let inst = rh
        .create(&create(
            "fixture-process",
            json!({"cmd": "echo \"$GREETING from $OCCOPUS_NODE_DIR\"; exec sleep 60"}),
        ))
        .await
        .unwrap();
    let pid = inst["pid"].as_u64().unwrap() as u32;
    let node_dir = root
        .path()
        .canonicalize()
        .unwrap()
        .join("infra-1/nodes/node-1");
    assert_eq!(inst["dir"], node_dir.display().to_string());
    assert!(inst["ip"].as_str().unwrap().starts_with("127.0."), "{inst}");
    // Its own session and process group: no terminal signal reaches it.
    assert_eq!(group_and_session(pid), Some((pid, pid)));
    let r = instance("fixture-process", "node-1", inst.clone());
    assert_eq!(rh.state(&r).await.unwrap().status, NodeStatus::Ready);
    until("the log line", || {
        std::fs::read_to_string(node_dir.join("out.log")).is_ok_and(|l| l.contains("hello from"))
    })
    .await;
    drop(rh);
    drop(rt);

    // A later process (here: a new runtime) sees the same process and can stop it.
    let mut cfg = config(dir.path());
    grant_process(&mut cfg, root.path());
    let rt2 = Runtime::load(cfg).await.unwrap();
    let rh2 = rt2.resource_handler("fixture-process").unwrap();
    assert_eq!(rh2.state(&r).await.unwrap().status, NodeStatus::Ready);
    assert_eq!(
        rh2.addresses(&r).await.unwrap().primary.as_deref(),
        inst["ip"].as_str()
    );
    rh2.destroy(&r).await.unwrap();
    until("the process group to go", || group_gone(pid)).await;
    assert!(!node_dir.exists(), "release removed the node directory");
    // Gone is gone, and destroy stays idempotent.
    let st = rh2.state(&r).await.unwrap();
    assert_eq!(
        (st.status, st.message.as_deref()),
        (NodeStatus::Shutdown, Some("gone"))
    );
    rh2.destroy(&r).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_is_recorded() {
    let root = tempfile::tempdir().unwrap();
    let (rt, _dir) = load_with(&["process"], |c| grant_process(c, root.path())).await;
    let rh = rt.resource_handler("fixture-process").unwrap();
    let inst = rh
        .create(&create(
            "fixture-process",
            json!({"cmd": "echo failing >&2; exit 3"}),
        ))
        .await
        .unwrap();
    let r = instance("fixture-process", "node-1", inst);
    for _ in 0..200 {
        let st = rh.state(&r).await.unwrap();
        if st.status == NodeStatus::Shutdown {
            assert_eq!(st.message.as_deref(), Some("exited with 3: failing\n"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the process did not exit");
}

fn scope(node: &str) -> NodeScope {
    NodeScope {
        infra_id: "infra-1".into(),
        node_id: node.into(),
    }
}

fn sh(cmd: &str) -> SpawnRequest {
    SpawnRequest {
        argv: vec!["sh".into(), "-c".into(), cmd.into()],
        env: vec![],
        cwd: String::new(),
        log_file: "log".into(),
    }
}

#[tokio::test]
async fn paths_cannot_escape_the_node_directory() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let host = RealHost::new(Some(root.path().to_path_buf())).unwrap();
    let n = scope("n1");
    host.write_file(&n, "conf/app.ini", b"x=1", Some(0o640))
        .await
        .unwrap();
    let dir = std::path::PathBuf::from(host.workdir(&n).await.unwrap());
    assert_eq!(std::fs::read(dir.join("conf/app.ini")).unwrap(), b"x=1");
    assert_eq!(host.read_tail(&n, "conf/app.ini", 2).await.unwrap(), b"=1");

    std::os::unix::fs::symlink(outside.path(), dir.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("f"), dir.join("f")).unwrap();
    for bad in ["out/x", "out/deeper/x", "f"] {
        let e = host.write_file(&n, bad, b"no", None).await.unwrap_err();
        assert!(matches!(e, PluginError::Denied(_)), "{bad}: {e:?}");
    }
    assert!(matches!(
        host.read_tail(&n, "out/x", 10).await,
        Err(PluginError::Denied(_))
    ));
    assert!(
        std::fs::read_dir(outside.path()).unwrap().next().is_none(),
        "nothing was created outside"
    );
    // A symlink that stays inside is fine.
    std::os::unix::fs::symlink(dir.join("conf"), dir.join("c2")).unwrap();
    host.write_file(&n, "c2/b", b"ok", None).await.unwrap();
    assert!(matches!(
        host.read_tail(&n, "missing", 10).await,
        Err(PluginError::NotFound(_))
    ));
}

#[tokio::test]
async fn kill_stops_the_whole_group_and_status_checks_start_time() {
    let root = tempfile::tempdir().unwrap();
    let host = RealHost::new(Some(root.path().to_path_buf())).unwrap();
    let n = scope("n1");
    let h = host
        .spawn(&n, &sh("sleep 60 & sleep 60; wait"))
        .await
        .unwrap();
    assert_eq!(host.status(&n, h).await.unwrap(), ProcessStatus::Running);
    // A pid with a different start time is somebody else's.
    let stranger = ProcessHandle {
        start_time: h.start_time + 1,
        ..h
    };
    assert_eq!(
        host.status(&n, stranger).await.unwrap(),
        ProcessStatus::Gone
    );
    host.kill(&n, h, Duration::from_secs(2)).await.unwrap();
    until("the group to go", || group_gone(h.pid)).await;
    let st = host.status(&n, h).await.unwrap();
    assert!(
        matches!(st, ProcessStatus::Signalled(15) | ProcessStatus::Gone),
        "{st:?}"
    );

    let h = host.spawn(&n, &sh("exit 7")).await.unwrap();
    for _ in 0..200 {
        match host.status(&n, h).await.unwrap() {
            ProcessStatus::Running => tokio::time::sleep(Duration::from_millis(10)).await,
            other => {
                assert_eq!(other, ProcessStatus::Exited(7));
                assert_eq!(
                    host.run(&n, &sh("exit 4"), Duration::from_secs(5))
                        .await
                        .unwrap(),
                    4
                );
                let e = host
                    .run(&n, &sh("sleep 5"), Duration::from_millis(100))
                    .await
                    .unwrap_err();
                assert!(matches!(e, PluginError::Timeout(_)), "{e:?}");
                return;
            }
        }
    }
    panic!("exit 7 never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_addresses_are_unique_per_node_and_reused_after_release() {
    let root = tempfile::tempdir().unwrap();
    // Separate service instances stand in for separate CLI processes.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let host = RealHost::new(Some(root.path().to_path_buf())).unwrap();
        tasks.push(tokio::spawn(async move {
            host.loopback_address(&scope(&format!("n{i}")))
                .await
                .unwrap()
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert!(a.starts_with("127.0.0.") && a != "127.0.0.1", "{a}");
        assert!(seen.insert(a.clone()), "{a} handed out twice");
    }
    let host = RealHost::new(Some(root.path().to_path_buf())).unwrap();
    let again = host.loopback_address(&scope("n3")).await.unwrap();
    assert!(seen.contains(&again), "the same node keeps its address");
    host.release(&scope("n3"), false).await.unwrap();
    let next = host.loopback_address(&scope("fresh")).await.unwrap();
    assert_eq!(next, again, "a released address is handed out again");
}
