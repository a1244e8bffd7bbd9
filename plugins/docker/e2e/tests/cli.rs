//! The `occopus` CLI with the `docker` plugin on a real engine: the multi-tier example of
//! `examples/docker-multi`, and Occopus's own docker tutorials (read from the Occopus
//! corpus beside the repository, adapted in a temporary copy: only the engine endpoint and
//! the image origin change).

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `examples/docker-multi` copied to `dir` with its endpoint replaced by `ep`.
fn example_copy(dir: &Path, ep: &str) -> PathBuf {
    let src = workspace_root().join("examples/docker-multi");
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    for f in ["infra-docker-multi.yaml", "nodes/node_definitions.yaml"] {
        let text = std::fs::read_to_string(src.join(f)).unwrap();
        std::fs::write(dir.join(f), text.replace("unix:///var/run/docker.sock", ep)).unwrap();
    }
    dir.join("infra-docker-multi.yaml")
}

/// The infrastructure id `occopus build` prints on its last line.
fn infra_id_of(build_output: &str) -> String {
    let id = build_output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string();
    assert_eq!(
        id.len(),
        36,
        "last line of `occopus build` is the infra id:\n{build_output}"
    );
    id
}

/// The 127.0.0.1 host port published for `port` by the container of `node`.
async fn published(api: &Api, infra: &str, node: &str, port: u64) -> u16 {
    let cs = api.containers_labelled("occopus.infra-id", infra).await;
    let c = cs
        .iter()
        .find(|c| c["Labels"]["occopus.node-name"] == node)
        .unwrap_or_else(|| panic!("no container for node {node}"));
    let p = c["Ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["PrivatePort"] == port && p["IP"] == "127.0.0.1")
        .unwrap_or_else(|| {
            panic!(
                "port {port} of {node} not published on 127.0.0.1: {}",
                c["Ports"]
            )
        });
    p["PublicPort"].as_u64().unwrap() as u16
}

async fn assert_nothing_left(api: &Api, infra: &str) {
    assert!(
        api.containers_labelled("occopus.infra-id", infra)
            .await
            .is_empty(),
        "containers left"
    );
    assert!(
        api.get(&format!("/networks/occopus-{infra}"))
            .await
            .is_none(),
        "network left"
    );
    assert!(
        api.volumes_labelled("occopus.infra-id", infra)
            .await
            .is_empty(),
        "volumes left"
    );
}

async fn container_logs(api: &Api, infra: &str, node: &str) -> String {
    let cs = api.containers_labelled("occopus.infra-id", infra).await;
    let mut out = String::new();
    for c in cs
        .iter()
        .filter(|c| c["Labels"]["occopus.node-name"] == node)
    {
        out.push_str(&api.logs(c["Id"].as_str().unwrap()).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_multi_example_builds_talks_reports_and_destroys() {
    let ep = engine_or_skip!();
    let api = Api::new(&ep);
    build_example_image(&api).await;
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let infra_file = example_copy(&work.path().join("example"), &ep);

    let out = occopus(&state, &["build", infra_file.to_str().unwrap()]);
    let infra = infra_id_of(&out);
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };

    // The tiers talk: proxy → api → store, each found through getip().
    let port = published(&api, &infra, "proxy", 80).await;
    let (status, body) = http_get(port, "/cgi-bin/item")
        .await
        .expect("proxy answers");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["tier"], "proxy");
    assert_eq!(v["upstream"]["tier"], "api");
    assert_eq!(v["upstream"]["value"], "hello from the store tier");

    // `occopus status` sees three ready nodes, at the addresses the tiers used.
    let st: Value =
        serde_json::from_str(&occopus(&state, &["status", &infra, "--output", "json"])).unwrap();
    assert_eq!(st["status"], "ready", "{st}");
    let nodes = st["instances"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{st}");
    assert!(nodes.iter().all(|n| n["status"] == "ready"), "{st}");
    let addr = |name: &str| {
        nodes.iter().find(|n| n["node"] == name).unwrap()["addresses"]["primary"].clone()
    };
    assert_eq!(v["upstream"]["store"], addr("store"));
    assert_eq!(v["api"], addr("api"));
    let text = occopus(&state, &["status", &infra]);
    assert!(text.contains("proxy") && text.contains("ready"), "{text}");

    // `occopus destroy` leaves nothing behind.
    occopus(&state, &["destroy", &infra]);
    assert_nothing_left(&api, &infra).await;
    let list = occopus(&state, &["status"]);
    assert!(!list.contains(&infra), "{list}");
}

/// The Occopus corpus beside the repository (`OCCOPUS_CORPUS_DIR` overrides).
fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("OCCOPUS_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpus/occopus"));
    dir.is_dir().then_some(dir)
}

/// Copy a tutorial to `to`, pointing `endpoint` at `ep` and every `origin:` URL at the
/// same file name under `base`. Nothing else changes.
fn adapt_tutorial(from: &Path, to: &Path, ep: &str, base: &str) {
    for e in dir_entries(from) {
        let text = String::from_utf8(e.1).unwrap();
        let adapted: Vec<String> = text
            .lines()
            .map(|l| {
                let l = l.replace("replace_with_your_docker_endpoint", ep);
                match l.split_once("origin:") {
                    Some((indent, url)) if url.trim().starts_with("http") => {
                        let file = url.trim().rsplit('/').next().unwrap();
                        format!("{indent}origin: {base}/{file}")
                    }
                    _ => l,
                }
            })
            .collect();
        let path = to.join(&e.0);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, adapted.join("\n") + "\n").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occopus_docker_tutorials_run_with_only_endpoint_and_origin_adapted() {
    let ep = engine_or_skip!();
    // Like the other corpus tests: a missing corpus is a failure, not a silent pass.
    let corpus = corpus().expect(
        "the Occopus tutorial corpus is not beside the repository (../shared/corpus/occopus); set OCCOPUS_CORPUS_DIR to its folder",
    );
    let api = Api::new(&ep);
    // The tutorials' images, rebuilt here: busybox with a /root/start.sh. Exported as
    // filesystem tarballs like the ones the tutorials import.
    let hello = "#!/bin/sh\necho \"$message\"\ntrap 'exit 0' TERM\nwhile true; do sleep 1; done\n";
    let ping = "#!/bin/sh\ntrap 'exit 0' TERM\nwhile true; do ping -c 1 -W 1 \"$target_ip\"; sleep 1; done\n";
    let mut images = vec![
        "busybox_helloworld:latest".to_string(),
        "busybox_ping:latest".to_string(),
    ];
    for i in &images {
        api.remove_image(i).await;
    }
    let mut files = std::collections::HashMap::new();
    for (name, script) in [("busybox_helloworld", hello), ("busybox_ping", ping)] {
        let tag = format!("occopus-e2e/{name}:build");
        build_busybox_image(
            &api,
            &tag,
            &[("root/start.sh", script.as_bytes(), 0o755)],
            r#"["/bin/sh"]"#,
        )
        .await;
        files.insert(format!("/docker/{name}.tar"), api.export_rootfs(&tag).await);
        images.push(tag);
    }
    let (base, hits) = serve(files).await;
    let base = format!("{base}/docker");
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let _images = Purge {
        api: api.clone(),
        infra: "none".into(),
        images,
    };

    // docker-helloworld: one container from an imported tarball, env from variables.
    let dir = work.path().join("docker-helloworld");
    adapt_tutorial(&corpus.join("docker-helloworld"), &dir, &ep, &base);
    let out = occopus(
        &state,
        &[
            "build",
            dir.join("infra-docker-helloworld.yaml").to_str().unwrap(),
        ],
    );
    let infra = infra_id_of(&out);
    let purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the engine imported the tarball"
    );
    let logs = eventually(10, "the hello world message", || async {
        let l = container_logs(&api, &infra, "helloworld").await;
        l.contains("Hello World! I have been created by Occopus.")
            .then_some(l)
    })
    .await;
    assert!(!logs.is_empty());
    occopus(&state, &["destroy", &infra]);
    assert_nothing_left(&api, &infra).await;
    drop(purge);

    // docker-ping: the sender pings the receiver at getip('ping-receiver').
    let dir = work.path().join("docker-ping");
    adapt_tutorial(&corpus.join("docker-ping"), &dir, &ep, &base);
    let out = occopus(
        &state,
        &[
            "build",
            dir.join("infra-docker-ping.yaml").to_str().unwrap(),
        ],
    );
    let infra = infra_id_of(&out);
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };
    let st: Value =
        serde_json::from_str(&occopus(&state, &["status", &infra, "--output", "json"])).unwrap();
    let receiver = st["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "ping-receiver")
        .expect("receiver")["addresses"]["primary"]
        .as_str()
        .expect("receiver address")
        .to_string();
    eventually(
        15,
        "the sender's pings answered by the receiver",
        || async {
            container_logs(&api, &infra, "ping-sender")
                .await
                .contains(&format!("bytes from {receiver}"))
                .then_some(())
        },
    )
    .await;
    assert!(
        container_logs(&api, &infra, "ping-receiver")
            .await
            .contains("I am the receiver node")
    );
    occopus(&state, &["destroy", &infra]);
    assert_nothing_left(&api, &infra).await;
}
