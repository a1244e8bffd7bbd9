//! The `docker` plugin, as built (`<target>/plugins/docker.wasm`), in the real runtime
//! against a real Docker Engine: create/state/addresses/destroy, exit states, adoption
//! of an interrupted create, image origins, error classes, and the sandbox refusing an
//! engine the section does not name.

mod common;

use common::*;
use occopus_model::plugin::PluginError;
use occopus_model::status::NodeStatus;
use occopus_runtime::PluginGrant;
use serde_json::{Value, json};
use std::sync::OnceLock;

/// The image every test uses: busybox, `/www/index.html`, httpd on 8080 by default.
const IMAGE: &str = "occopus-e2e/busybox";
const TAG: &str = "1";
const PAGE: &str = "occopus docker e2e page";

fn ensure_image(ep: &str) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let api = Api::new(ep);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(build_busybox_image(
                &api,
                &format!("{IMAGE}:{TAG}"),
                &[("www/index.html", PAGE.as_bytes(), 0o644)],
                r#"["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]"#,
            ));
        })
        .join()
        .expect("image build");
    });
}

fn section(ep: &str, extra: Value) -> Value {
    let mut s = json!({"type": "docker", "endpoint": ep, "origin": "local", "image": IMAGE, "tag": TAG, "stop_grace_s": 1});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        s[k] = v;
    }
    s
}

fn ctx(command: &str) -> Value {
    json!({"env": ["GREETING=hello"], "command": command})
}

async fn wait_status(
    h: &dyn occopus_model::plugin::ResourceHandler,
    r: &occopus_model::plugin::InstanceRef,
    want: NodeStatus,
) -> Option<String> {
    eventually(
        20,
        &format!("{} to become {want:?}", r.node.node_name),
        || async {
            let s = h.state(r).await.expect("state");
            (s.status == want).then_some(s.message)
        },
    )
    .await
}

#[tokio::test]
async fn lifecycle_network_ports_volumes_limits_and_cleanup() {
    let ep = engine_or_skip!();
    ensure_image(&ep);
    let api = Api::new(&ep);
    let infra = infra_id("life");
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };
    let rt = runtime_with(None).await;
    let h = handler(&rt).await;

    let web = create_req(
        node(&infra, "web", "web-1"),
        section(
            &ep,
            json!({
                "ports": [8080], "labels": {"team": "e2e"}, "volumes": ["data:/data", "/scratch"],
                "memory": "32m", "cpus": 0.5, "restart": "on-failure:1"
            }),
        ),
        ctx("httpd -f -p 8080 -h /www"),
    );
    let client = create_req(
        node(&infra, "client", "client-1"),
        section(&ep, json!({"volumes": ["data:/data"]})),
        ctx(
            "sh -c 'until wget -q -O /data/got http://web:8080/; do sleep 0.2; done; cat /data/got; echo; sleep 3600'",
        ),
    );
    let wi = h.create(&web).await.expect("create web");
    let ci = h.create(&client).await.expect("create client");
    let wr = inst_ref(&web, wi.clone());
    let cr = inst_ref(&client, ci.clone());
    wait_status(h.as_ref(), &wr, NodeStatus::Ready).await;
    wait_status(h.as_ref(), &cr, NodeStatus::Ready).await;

    // Addresses: the container's IP on the infrastructure network.
    let wid = wi["id"].as_str().unwrap().to_string();
    let c = api.inspect(&wid).await.unwrap();
    let net = format!("occopus-{infra}");
    let ip = c["NetworkSettings"]["Networks"][&net]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let a = h.addresses(&wr).await.expect("addresses");
    assert_eq!(a.primary.as_deref(), Some(ip.as_str()));
    assert!(a.all.contains(&ip), "{a:?}");

    // Published on 127.0.0.1 only, and serving.
    let port = api.published_port(&wid, 8080).await;
    let (status, body) = eventually(10, "web answering on its published port", || async {
        http_get(port, "/").await.ok()
    })
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(PAGE), "{body}");

    // The client reached the web tier by its node name over the infrastructure network
    // and shared the named volume.
    let cid = ci["id"].as_str().unwrap().to_string();
    eventually(15, "client to fetch the page from web", || async {
        api.logs(&cid).await.contains(PAGE).then_some(())
    })
    .await;

    // What the section asked for reached the engine.
    assert_eq!(c["Name"], format!("/web-web-1"));
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["occopus.infra-id"], infra.as_str());
    assert_eq!(labels["occopus.node-name"], "web");
    assert_eq!(labels["occopus.node-id"], "web-1");
    assert_eq!(labels["team"], "e2e");
    assert_eq!(c["HostConfig"]["Memory"], 32 << 20);
    assert_eq!(c["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert!(
        c["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello")
    );
    let data_vol = format!("occopus-{infra}-data");
    assert_eq!(
        api.volumes_labelled("occopus.infra-id", &infra).await,
        vec![data_vol.clone()]
    );
    let anon: Vec<String> = c["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Destination"] == "/scratch")
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(anon.len(), 1, "anonymous volume mounted: {}", c["Mounts"]);

    // Destroying one node keeps the network for its sibling.
    h.destroy(&wr).await.expect("destroy web");
    assert!(api.inspect(&wid).await.is_none(), "web container removed");
    assert!(
        api.get(&format!("/volumes/{}", anon[0])).await.is_none(),
        "anonymous volume removed with its container"
    );
    assert!(
        api.get(&format!("/networks/{net}")).await.is_some(),
        "network kept while client lives"
    );
    assert_eq!(h.state(&wr).await.unwrap().status, NodeStatus::Shutdown);

    // The last one takes network and named volumes with it; destroy is idempotent.
    h.destroy(&cr).await.expect("destroy client");
    assert!(api.inspect(&cid).await.is_none());
    assert!(
        api.get(&format!("/networks/{net}")).await.is_none(),
        "network removed with the last container"
    );
    assert!(
        api.volumes_labelled("occopus.infra-id", &infra)
            .await
            .is_empty(),
        "named volumes removed"
    );
    h.destroy(&cr).await.expect("destroying again is success");
    h.destroy(&wr).await.expect("destroying again is success");
    assert!(
        api.containers_labelled("occopus.infra-id", &infra)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn exit_codes_kills_and_stops_map_to_states() {
    let ep = engine_or_skip!();
    ensure_image(&ep);
    let api = Api::new(&ep);
    let infra = infra_id("exit");
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };
    let rt = runtime_with(None).await;
    let h = handler(&rt).await;

    let ok = create_req(
        node(&infra, "ok", "ok-1"),
        section(&ep, json!({})),
        ctx("sh -c 'echo finished; exit 0'"),
    );
    let bad = create_req(
        node(&infra, "bad", "bad-1"),
        section(&ep, json!({})),
        ctx("sh -c 'echo step one; echo boom on stderr >&2; exit 3'"),
    );
    let killed = create_req(
        node(&infra, "killed", "killed-1"),
        section(&ep, json!({})),
        ctx("httpd -f -p 8080 -h /www"),
    );
    let polite = create_req(
        node(&infra, "polite", "polite-1"),
        section(&ep, json!({})),
        ctx("sh -c 'trap \"exit 0\" TERM; while true; do sleep 0.2; done'"),
    );
    let mut refs = Vec::new();
    for r in [&ok, &bad, &killed, &polite] {
        let i = h
            .create(r)
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", r.node.node_name));
        refs.push(inst_ref(r, i));
    }

    let m = wait_status(h.as_ref(), &refs[0], NodeStatus::Shutdown).await;
    assert_eq!(m.as_deref(), Some("exited with code 0"));
    let m = wait_status(h.as_ref(), &refs[1], NodeStatus::Failed)
        .await
        .unwrap();
    assert!(m.starts_with("exited with code 3; last log lines:"), "{m}");
    assert!(
        m.contains("step one") && m.contains("boom on stderr"),
        "{m}"
    );

    // Killed from outside: failed with SIGKILL's exit code.
    wait_status(h.as_ref(), &refs[2], NodeStatus::Ready).await;
    let kid = refs[2].instance["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .call("POST", &format!("/containers/{kid}/kill?signal=KILL"), None)
        .await;
    assert_eq!(s, 204);
    let m = wait_status(h.as_ref(), &refs[2], NodeStatus::Failed)
        .await
        .unwrap();
    assert!(m.starts_with("exited with code 137"), "{m}");

    // Stopped politely (exits 0 on SIGTERM): shutdown.
    wait_status(h.as_ref(), &refs[3], NodeStatus::Ready).await;
    let pid = refs[3].instance["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .call("POST", &format!("/containers/{pid}/stop?t=5"), None)
        .await;
    assert_eq!(s, 204);
    wait_status(h.as_ref(), &refs[3], NodeStatus::Shutdown).await;

    for r in &refs {
        h.destroy(r).await.expect("destroy");
    }
    assert!(
        api.containers_labelled("occopus.infra-id", &infra)
            .await
            .is_empty()
    );
    assert!(
        api.get(&format!("/networks/occopus-{infra}"))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_rerun_create_adopts_the_container_of_an_interrupted_one() {
    let ep = engine_or_skip!();
    ensure_image(&ep);
    let api = Api::new(&ep);
    let infra = infra_id("adopt");
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };
    let rt = runtime_with(None).await;
    let h = handler(&rt).await;

    // A create whose answer was lost: find and a second create return the same container.
    let req = create_req(
        node(&infra, "web", "n-1"),
        section(&ep, json!({})),
        ctx("httpd -f -p 8080 -h /www"),
    );
    let first = h.create(&req).await.expect("create");
    let found = h.find(&req).await.expect("find").expect("found");
    assert_eq!(found["id"], first["id"]);
    let again = h.create(&req).await.expect("create again");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        api.containers_labelled("occopus.node-id", "n-1")
            .await
            .len(),
        1,
        "one container only"
    );

    // Interrupted between the engine's create and start: the container exists, stopped
    // in `created`. The rerun adopts and starts it.
    let req2 = create_req(
        node(&infra, "web", "n-2"),
        section(&ep, json!({})),
        ctx("httpd -f -p 8080 -h /www"),
    );
    assert!(h.find(&req2).await.expect("find").is_none());
    let net = format!("occopus-{infra}");
    let (s, b) = api
        .call(
            "POST",
            "/containers/create?name=web-n-2",
            Some(json!({
                "Image": format!("{IMAGE}:{TAG}"),
                "Cmd": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                "Labels": {"occopus.infra-id": infra, "occopus.node-name": "web", "occopus.node-id": "n-2"},
                "HostConfig": {"NetworkMode": net}
            })),
        )
        .await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let made: Value = serde_json::from_slice(&b).unwrap();
    let adopted = h.create(&req2).await.expect("rerun create");
    assert_eq!(adopted["id"], made["Id"]);
    wait_status(
        h.as_ref(),
        &inst_ref(&req2, adopted.clone()),
        NodeStatus::Ready,
    )
    .await;
    assert_eq!(
        api.containers_labelled("occopus.node-id", "n-2")
            .await
            .len(),
        1
    );

    // A foreign container holding the name is refused, not adopted.
    let req3 = create_req(
        node(&infra, "web", "n-3"),
        section(&ep, json!({})),
        ctx("httpd -f -p 8080 -h /www"),
    );
    let (s, _) = api
        .call(
            "POST",
            "/containers/create?name=web-n-3",
            Some(json!({"Image": format!("{IMAGE}:{TAG}"), "Labels": {"occopus.infra-id": infra}})),
        )
        .await;
    assert_eq!(s, 201);
    let err = h.create(&req3).await.unwrap_err();
    assert!(matches!(err, PluginError::Conflict(_)), "{err}");
    assert!(
        err.to_string().contains("was not made for node id n-3"),
        "{err}"
    );

    h.destroy(&inst_ref(&req, first)).await.unwrap();
    h.destroy(&inst_ref(&req2, adopted)).await.unwrap();
}

#[tokio::test]
async fn errors_missing_image_engine_refusals_and_unreachable_engines() {
    let ep = engine_or_skip!();
    ensure_image(&ep);
    let api = Api::new(&ep);
    let infra = infra_id("err");
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };
    let rt = runtime_with(None).await;
    let h = handler(&rt).await;

    // Missing image: permanent, names image and tag.
    let missing = create_req(
        node(&infra, "web", "m-1"),
        section(&ep, json!({"image": "occopus-e2e/absent", "tag": "nope"})),
        ctx("true"),
    );
    let err = h.create(&missing).await.unwrap_err();
    assert!(matches!(err, PluginError::NotFound(_)), "{err:?}");
    let m = err.to_string();
    assert!(
        m.contains("`occopus-e2e/absent`")
            && m.contains("`nope`")
            && m.contains("origin is `local`"),
        "{m}"
    );
    assert!(
        api.containers_labelled("occopus.infra-id", &infra)
            .await
            .is_empty(),
        "nothing created"
    );

    // An engine 4xx: permanent, with the engine's own message.
    let tiny = create_req(
        node(&infra, "web", "m-2"),
        section(&ep, json!({"memory": "1m"})),
        ctx("true"),
    );
    let err = h.create(&tiny).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("memory"), "{err}");

    // No engine at the endpoint: transient (the engine retries).
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("unix://{}/docker.sock", dir.path().display());
    let gone = create_req(
        node(&infra, "web", "m-3"),
        section(&nowhere, json!({})),
        ctx("true"),
    );
    let err = h.create(&gone).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    // A command missing from the image: permanent, and nothing is left behind.
    let nocmd = create_req(
        node(&infra, "web", "m-4"),
        section(&ep, json!({})),
        json!({"command": ["/no/such/program"]}),
    );
    let err = h.create(&nocmd).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        api.containers_labelled("occopus.infra-id", &infra)
            .await
            .is_empty(),
        "failed start cleaned up"
    );
    assert!(
        api.get(&format!("/networks/occopus-{infra}"))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn url_origin_imports_a_filesystem_tarball_served_on_loopback() {
    let ep = engine_or_skip!();
    ensure_image(&ep);
    let api = Api::new(&ep);
    let infra = infra_id("url");
    let imported = format!("occopus-e2e/imported:{}", std::process::id());
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![imported.clone()],
    };

    // A filesystem tarball, as `docker export` writes it.
    let (s, b) = api
        .call(
            "POST",
            "/containers/create",
            Some(json!({"Image": format!("{IMAGE}:{TAG}"), "Labels": {"occopus.infra-id": infra}})),
        )
        .await;
    assert_eq!(s, 201);
    let tmp: Value = serde_json::from_slice(&b).unwrap();
    let tmp_id = tmp["Id"].as_str().unwrap();
    let (s, rootfs) = api
        .call("GET", &format!("/containers/{tmp_id}/export"), None)
        .await;
    assert_eq!(s, 200);
    api.call("DELETE", &format!("/containers/{tmp_id}?force=1"), None)
        .await;

    let (base, hits) = serve([("/rootfs.tar".to_string(), rootfs)].into()).await;
    let url = format!("{base}/rootfs.tar");
    let rt = runtime_with(None).await;
    let h = handler(&rt).await;
    let (name, tag) = imported.split_once(':').unwrap();
    let req = create_req(
        node(&infra, "imported", "u-1"),
        section(
            &ep,
            json!({"origin": url, "image": name, "tag": tag, "ports": [8080]}),
        ),
        ctx("httpd -f -p 8080 -h /www"),
    );
    let i = h.create(&req).await.expect("create from URL origin");
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the engine fetched the tarball"
    );
    assert!(
        api.get(&format!("/images/{imported}/json")).await.is_some(),
        "image imported"
    );
    let r = inst_ref(&req, i.clone());
    wait_status(h.as_ref(), &r, NodeStatus::Ready).await;
    let port = api.published_port(i["id"].as_str().unwrap(), 8080).await;
    let (status, body) = eventually(10, "imported httpd answering", || async {
        http_get(port, "/").await.ok()
    })
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(PAGE));
    h.destroy(&r).await.unwrap();
}

#[tokio::test]
async fn the_sandbox_refuses_engines_the_section_does_not_name() {
    let ep = engine_or_skip!();
    ensure_image(&ep);
    let api = Api::new(&ep);
    let infra = infra_id("deny");
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };
    let rt = runtime_with(None).await;
    let h = handler(&rt).await;

    // No endpoint in the section: the default socket is not granted by default.
    let mut s = section(&ep, json!({}));
    s.as_object_mut().unwrap().remove("endpoint");
    let req = create_req(
        node(&infra, "web", "d-1"),
        s,
        ctx("httpd -f -p 8080 -h /www"),
    );
    let err = h.create(&req).await.unwrap_err();
    let PluginError::Denied(m) = &err else {
        panic!("expected denied, got {err:?}")
    };
    assert!(
        m.contains("unix:///var/run/docker.sock") && m.contains("plugins.docker.unix"),
        "{m}"
    );
    assert!(
        api.containers_labelled("occopus.infra-id", &infra)
            .await
            .is_empty()
    );

    // Once the operator grants the default socket, the same section works.
    if ep == "unix:///var/run/docker.sock" {
        let granted = runtime_with(Some(PluginGrant {
            unix: vec!["/var/run/docker.sock".into()],
            ..Default::default()
        }))
        .await;
        let gh = handler(&granted).await;
        let i = gh
            .create(&req)
            .await
            .expect("create with the granted default socket");
        gh.destroy(&inst_ref(&req, i)).await.unwrap();
    }

    // A container recorded on another engine than the section names: the plugin may not
    // reach that engine, for state or destroy.
    let req = create_req(
        node(&infra, "web", "d-2"),
        section(&ep, json!({})),
        ctx("httpd -f -p 8080 -h /www"),
    );
    let i = h.create(&req).await.expect("create");
    let mut elsewhere = i.clone();
    elsewhere["endpoint"] = json!("tcp://127.0.0.1:9");
    let r = inst_ref(&req, elsewhere);
    for err in [
        h.state(&r).await.unwrap_err(),
        h.destroy(&r).await.unwrap_err(),
    ] {
        let PluginError::Denied(m) = &err else {
            panic!("expected denied, got {err:?}")
        };
        assert!(
            m.contains("127.0.0.1:9") && m.contains("is not granted to plugin `docker`"),
            "{m}"
        );
    }
    assert!(
        api.inspect(i["id"].as_str().unwrap()).await.is_some(),
        "nothing happened to the container"
    );
    h.destroy(&inst_ref(&req, i)).await.unwrap();
}

#[tokio::test]
async fn a_tcp_endpoint_works_like_the_socket() {
    let ep = engine_or_skip!();
    let Some(sock) = ep.strip_prefix("unix://").map(str::to_string) else {
        eprintln!("the test engine is not on a unix socket; the tcp proxy test does not apply");
        return;
    };
    ensure_image(&ep);
    let api = Api::new(&ep);
    let infra = infra_id("tcp");
    let _purge = Purge {
        api: api.clone(),
        infra: infra.clone(),
        images: vec![],
    };

    // A loopback TCP front for the engine's socket.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            let sock = sock.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect(&sock).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    let tcp_ep = format!("tcp://127.0.0.1:{port}");
    let rt = runtime_with(None).await;
    let h = handler(&rt).await;
    let req = create_req(
        node(&infra, "web", "t-1"),
        section(&tcp_ep, json!({})),
        ctx("httpd -f -p 8080 -h /www"),
    );
    let i = h.create(&req).await.expect("create over tcp");
    assert_eq!(i["endpoint"], tcp_ep.as_str());
    let r = inst_ref(&req, i.clone());
    wait_status(h.as_ref(), &r, NodeStatus::Ready).await;
    assert!(h.addresses(&r).await.unwrap().primary.is_some());
    h.destroy(&r).await.unwrap();
    assert!(api.inspect(i["id"].as_str().unwrap()).await.is_none());
}
