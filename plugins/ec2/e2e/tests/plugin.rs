//! The built `ec2` component, loaded by the real plugin runtime, against the EC2
//! emulator (moto with SigV4 checking on; `scripts/testenv.sh up moto`). Every test fails
//! with instructions when the emulator is not running, unless `OCCOPUS_SKIP_EC2_TESTS=1`.
//!
//! The tests share one emulator (and maybe other suites' instances): they only count
//! instances carrying tags with ids they made themselves.

use occopus_ec2_e2e::*;
use occopus_model::plugin::{InstanceRef, PluginError, PluginHost, PluginKind, ResourceHandler};
use occopus_model::secret::Secret;
use occopus_model::status::NodeStatus;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Poll `state` until it is `want` (the emulator moves pending → running on the next
/// describe, so this takes a call or two).
async fn wait_for(
    rh: &Arc<dyn ResourceHandler>,
    r: &InstanceRef,
    want: NodeStatus,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = rh.state(r).await.expect("state");
        if s.status == want {
            return s.message;
        }
        assert!(Instant::now() < deadline, "still {s:?}, wanted {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn id_of(inst: &serde_json::Value) -> String {
    inst["instance_id"]
        .as_str()
        .unwrap_or_else(|| panic!("instance data without instance_id: {inst}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_get_tagged_instances_with_their_cloud_init_and_destroy_removes_exactly_them() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let rh = rt.resource_handler("ec2").unwrap();
    let infra = unique();
    // An instance of the same infrastructure tag that the plugin did not make.
    let bystander = emu
        .run_tagged(&[("occopus:infra-id", &infra), ("role", "bystander")])
        .await;

    let mut made = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let node = node(&infra, name);
        let context = format!(
            "#cloud-config\nwrite_files:\n- content: \"Hello from {name} ({})\\n\"\n  path: /tmp/helloworld.txt\n  permissions: '0644'\n",
            node.node_id
        );
        let mut section = emu.section(&emu.endpoint);
        section["tags"]["tier"] = json!(name);
        // Spaces and symbols survive form encoding and the signature check.
        section["tags"]["note"] = json!("made by the e2e suite: 100% & more");
        let req = create_request(&node, section, Some(&context), Some(emu.credentials()));
        let inst = rh.create(&req).await.expect("create");
        assert_eq!(inst["adopted"], false, "{inst}");
        made.push((req, inst, context));
    }
    let ids: Vec<String> = made.iter().map(|(_, i, _)| id_of(i)).collect();
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3,
        "{ids:?}"
    );

    for (req, inst, context) in &made {
        let id = id_of(inst);
        let seen = emu.instance(&id).await;
        assert_eq!(seen.image_id, "ami-12345678");
        assert_eq!(seen.instance_type, "t3.micro");
        assert_eq!(
            seen.tag("occopus:infra-id"),
            Some(infra.as_str()),
            "{seen:?}"
        );
        assert_eq!(
            seen.tag("occopus:node-name"),
            Some(req.node.node_name.as_str())
        );
        assert_eq!(seen.tag("occopus:node-id"), Some(req.node.node_id.as_str()));
        assert_eq!(seen.tag("suite"), Some("occopus-ec2-e2e"));
        assert_eq!(seen.tag("tier"), Some(req.node.node_name.as_str()));
        assert_eq!(seen.tag("note"), Some("made by the e2e suite: 100% & more"));
        let name = seen.tag("Name").unwrap_or_default();
        assert!(
            name.starts_with("occopus-ec2-e2e-") && name.ends_with(&req.node.node_id.as_str()[..8]),
            "{name}"
        );
        assert_eq!(emu.user_data(&id).await.as_deref(), Some(context.as_str()));

        let r = instance_ref(req, inst.clone());
        let msg = wait_for(&rh, &r, NodeStatus::Ready)
            .await
            .unwrap_or_default();
        assert!(msg.contains(&id) && msg.contains("running"), "{msg}");
        let a = rh.addresses(&r).await.expect("addresses");
        let seen = emu.instance(&id).await;
        assert!(
            !seen.dns_name.is_empty() && !seen.private_ip.is_empty(),
            "{seen:?}"
        );
        assert_eq!(
            a.primary.as_deref(),
            Some(seen.dns_name.as_str()),
            "public DNS name first"
        );
        assert_eq!(a.private.as_deref(), Some(seen.private_ip.as_str()));
        assert!(
            a.all.contains(&seen.ip_address) && a.all.contains(&seen.private_ip),
            "{a:?}"
        );
    }
    let tagged = emu.instances_tagged("occopus:infra-id", &infra).await;
    assert_eq!(tagged.len(), 4, "3 nodes and the bystander: {tagged:?}");

    for (req, inst, _) in &made {
        rh.destroy(&instance_ref(req, inst.clone()))
            .await
            .expect("destroy");
    }
    for t in emu.instances_tagged("occopus:infra-id", &infra).await {
        if t.id == bystander {
            assert!(
                matches!(t.state.as_str(), "pending" | "running"),
                "bystander: {t:?}"
            );
        } else {
            assert!(ids.contains(&t.id), "{t:?}");
            assert!(
                matches!(t.state.as_str(), "shutting-down" | "terminated"),
                "{t:?}"
            );
        }
    }
    for (req, inst, _) in &made {
        let r = instance_ref(req, inst.clone());
        wait_for(&rh, &r, NodeStatus::Shutdown).await;
        // Destroying again is success.
        rh.destroy(&r).await.expect("second destroy");
    }
    // An id the cloud never knew is already gone too.
    let (req, inst, _) = &made[0];
    let mut ghost = inst.clone();
    ghost["instance_id"] = json!("i-0123456789abcdef0");
    rh.destroy(&instance_ref(req, ghost))
        .await
        .expect("destroying an unknown id");
    emu.ok("TerminateInstances", &[("InstanceId.1", &bystander)])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_instance_is_temp_failed_with_the_reason_and_terminated_is_shutdown() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let rh = rt.resource_handler("ec2").unwrap();
    let node = node(&unique(), "worker");
    let req = create_request(
        &node,
        emu.section(&emu.endpoint),
        None,
        Some(emu.credentials()),
    );
    let inst = rh.create(&req).await.expect("create");
    let id = id_of(&inst);
    assert_eq!(
        emu.user_data(&id).await,
        None,
        "no cloud-init, no user data"
    );
    let r = instance_ref(&req, inst);
    wait_for(&rh, &r, NodeStatus::Ready).await;

    emu.ok("StopInstances", &[("InstanceId.1", &id)]).await;
    let msg = wait_for(&rh, &r, NodeStatus::TempFailed)
        .await
        .unwrap_or_default();
    assert!(
        msg.contains("stopp") && msg.contains("UserInitiatedShutdown"),
        "{msg}"
    );
    // A stopped instance is still this node's: `find` adopts it rather than making another.
    let found = rh.find(&req).await.expect("find").expect("found");
    assert_eq!(id_of(&found), id);

    emu.ok("TerminateInstances", &[("InstanceId.1", &id)]).await;
    let msg = wait_for(&rh, &r, NodeStatus::Shutdown)
        .await
        .unwrap_or_default();
    assert!(
        msg.contains("terminated") || msg.contains("shutting-down"),
        "{msg}"
    );
    assert_eq!(
        rh.find(&req).await.expect("find"),
        None,
        "terminated instances are not adopted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_fails_fast_with_a_clear_authentication_error() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let rh = rt.resource_handler("ec2").unwrap();
    let node = node(&unique(), "web");
    let wrong = "Wr0ngSecretKeyThatMustNeverBeShown";
    let creds = Secret::new(json!({"accesskey": emu.access_key, "secretkey": wrong}));
    let req = create_request(
        &node,
        emu.section(&emu.endpoint),
        Some("#cloud-config\n"),
        Some(creds),
    );
    let started = Instant::now();
    let e = rh.create(&req).await.expect_err("a wrong secret must fail");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!e.is_retryable(), "{e:?}");
    let text = e.to_string();
    assert!(
        matches!(&e, PluginError::InvalidConfig { .. })
            && text.contains("AuthFailure")
            && text.contains("credentials"),
        "{e:?}"
    );
    assert!(
        !text.contains(wrong) && !format!("{e:?}").contains(wrong),
        "{e:?}"
    );
    assert!(
        emu.instances_tagged("occopus:node-id", node.node_id.as_str())
            .await
            .is_empty()
    );

    // No auth entry at all: said before any request.
    let bare = create_request(&node, emu.section(&emu.endpoint), None, None);
    let e = rh.create(&bare).await.expect_err("no credentials");
    assert!(e.to_string().contains("auth_data"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_interrupted_after_run_instances_is_adopted_on_rerun() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let rh = rt.resource_handler("ec2").unwrap();
    let node = node(&unique(), "db");
    let req = create_request(
        &node,
        emu.section(&emu.endpoint),
        Some("#cloud-config\n"),
        Some(emu.credentials()),
    );
    assert_eq!(rh.find(&req).await.expect("find"), None);

    // The first attempt got as far as RunInstances (with the node's tags), then died.
    let first = emu
        .run_tagged(&[
            ("occopus:infra-id", node.infra_id.as_str()),
            ("occopus:node-name", node.node_name.as_str()),
            ("occopus:node-id", node.node_id.as_str()),
        ])
        .await;
    let found = rh
        .find(&req)
        .await
        .expect("find")
        .expect("the earlier instance is found");
    assert_eq!(id_of(&found), first);
    let again = rh.create(&req).await.expect("rerun create");
    assert_eq!(id_of(&again), first);
    assert_eq!(again["adopted"], true);
    let third = rh.create(&req).await.expect("another rerun");
    assert_eq!(id_of(&third), first);
    let all = emu
        .instances_tagged("occopus:node-id", node.node_id.as_str())
        .await;
    assert_eq!(all.len(), 1, "exactly one instance for the node: {all:?}");

    rh.destroy(&instance_ref(&req, again))
        .await
        .expect("destroy");
    let gone = emu.instance(&first).await;
    assert!(
        matches!(gone.state.as_str(), "shutting-down" | "terminated"),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttling_answer_is_transient_and_the_retry_creates_exactly_one_instance() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let rh = rt.resource_handler("ec2").unwrap();
    let proxy = ThrottleProxy::start(loopback_addr(&emu.endpoint), 1).await;
    let node = node(&unique(), "web");
    let req = create_request(
        &node,
        emu.section(&proxy.endpoint()),
        Some("#cloud-config\n"),
        Some(emu.credentials()),
    );

    let e = rh.create(&req).await.expect_err("throttled");
    assert!(e.is_retryable(), "{e:?}");
    assert!(matches!(e, PluginError::Transient { .. }), "{e:?}");
    assert!(e.to_string().contains("RequestLimitExceeded"), "{e}");
    assert_eq!(proxy.throttled.load(Ordering::SeqCst), 1);
    assert!(
        emu.instances_tagged("occopus:node-id", node.node_id.as_str())
            .await
            .is_empty()
    );

    // What the engine does with a transient error: try again.
    let inst = rh.create(&req).await.expect("the retry succeeds");
    assert!(
        proxy.forwarded.load(Ordering::SeqCst) >= 2,
        "describe and run went through the proxy"
    );
    let all = emu
        .instances_tagged("occopus:node-id", node.node_id.as_str())
        .await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, id_of(&inst));
    let r = instance_ref(&req, inst);
    wait_for(&rh, &r, NodeStatus::Ready).await;
    rh.destroy(&r).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_cannot_reach_a_host_other_than_its_endpoint() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let rh = rt.resource_handler("ec2").unwrap();
    let elsewhere = Counter::start().await;
    let node = node(&unique(), "web");
    let req = create_request(
        &node,
        emu.section(&emu.endpoint),
        None,
        Some(emu.credentials()),
    );
    // Instance data pointing somewhere the section does not name (tampered, or the
    // section's endpoint was changed after creation).
    let inst = json!({
        "instance_id": "i-0123456789abcdef0",
        "endpoint": format!("http://{}/", elsewhere.addr),
        "region": emu.region,
        "created_ms": 0
    });
    let r = instance_ref(&req, inst);
    for e in [
        rh.state(&r).await.expect_err("state"),
        rh.destroy(&r).await.expect_err("destroy"),
    ] {
        match &e {
            PluginError::Denied(m) => {
                assert!(m.contains(&elsewhere.addr.port().to_string()), "{m}")
            }
            other => panic!("expected denied, got {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        elsewhere.connections.load(Ordering::SeqCst),
        0,
        "nothing reached the other host"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_are_permanent_and_point_at_the_field() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let rh = rt.resource_handler("ec2").unwrap();
    let node = node(&unique(), "web");
    let mut section = emu.section(&emu.endpoint);
    section["subnet_id"] = json!("subnet-doesnotexist");
    let req = create_request(&node, section, None, Some(emu.credentials()));
    match rh.create(&req).await.expect_err("unknown subnet") {
        PluginError::InvalidConfig { path, message } => {
            assert_eq!(path, "/subnet_id");
            assert!(message.contains("InvalidSubnetID.NotFound"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        emu.instances_tagged("occopus:node-id", node.node_id.as_str())
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_schema_and_validation_reach_the_host() {
    let Some(emu) = emulator() else { return };
    let (rt, _dir) = runtime().await;
    let info = rt
        .plugins()
        .into_iter()
        .find(|p| p.name == "ec2")
        .expect("ec2 loaded");
    assert_eq!(info.kind, PluginKind::ResourceHandler);
    assert_eq!(info.types[0].name, "ec2");
    assert!(
        info.requested.is_empty(),
        "needs no capability: {:?}",
        info.requested
    );

    let good = emu.section(&emu.endpoint);
    let errs = rt
        .check_section(PluginKind::ResourceHandler, "ec2", &good, false)
        .unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("image_id");
    bad["security_group_ids"] = json!("sg-1");
    let errs = rt
        .check_section(PluginKind::ResourceHandler, "ec2", &bad, false)
        .unwrap();
    assert!(errs.len() >= 2, "{errs:?}");

    let rh = rt.resource_handler("ec2").unwrap();
    rh.validate("ec2", &good).await.expect("valid");
    // A tutorial's placeholders validate, as in Occopus; creating refuses them before
    // any request.
    let mut placeholder = good;
    placeholder["endpoint"] = json!("replace_with_endpoint_of_ec2_interface_of_your_cloud");
    let errs = rt
        .check_section(PluginKind::ResourceHandler, "ec2", &placeholder, false)
        .unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    rh.validate("ec2", &placeholder)
        .await
        .expect("placeholders validate");
    let node = node(&unique(), "web");
    let req = create_request(&node, placeholder, None, Some(emu.credentials()));
    match rh.create(&req).await.expect_err("not an endpoint") {
        PluginError::InvalidConfig { path, message } => {
            assert_eq!(path, "/endpoint");
            assert!(message.contains("replace_with_endpoint"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
