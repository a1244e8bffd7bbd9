//! The `local` component against the SDK harness's mock host: what it asks the host to do
//! (files, the spawn request, kill and release), adoption by node id, and timeouts under a
//! controlled clock. No real process is started here; `tests/local.rs` does that.

#[path = "support/component.rs"]
mod component;

use occopus_model::plugin::PluginError;
use occopus_model::status::NodeStatus;
use occopus_sdk_harness::{Harness, Options, ProcessStatus};
use serde_json::{Value, json};

const CLOUD_CONFIG: &str = "#cloud-config\n\
    packages: [nginx]\n\
    write_files:\n\
    \x20 - {path: /etc/app.ini, content: 'port=1', permissions: '0600'}\n\
    \x20 - {path: z.txt, encoding: gz+b64, content: H4sIAAAAAAACA8vI5AIAenpv7QMAAAA=}\n\
    runcmd:\n\
    \x20 - echo one\n";

async fn harness() -> Harness {
    Harness::load(component::path())
        .await
        .expect("the component loads")
}

async fn create(h: &Harness, resource: Value, context: Option<&str>) -> Result<Value, PluginError> {
    let mut req = h.create_request(resource);
    req.context = context.map(str::to_string);
    h.resource_handler()?.create(&req).await
}

#[tokio::test]
async fn create_writes_the_files_and_spawns_the_start_script() {
    let h = harness().await;
    assert_eq!(h.info().name, "local");
    assert!(
        h.info().requested.iter().any(|c| c == "process"),
        "{:?}",
        h.info().requested
    );
    let resource =
        json!({"type": "local", "command": ["python3", "app.py"], "env": {"PORT": 8080}});
    let data = create(&h, resource.clone(), Some(CLOUD_CONFIG))
        .await
        .unwrap();
    assert_eq!(data["address"], "127.0.0.2");

    let files = h.mock().files();
    assert_eq!(files["etc/app.ini"], b"port=1");
    assert_eq!(files["z.txt"], b"hi\n");
    let script = String::from_utf8(files[".occopus-run.sh"].clone()).unwrap();
    assert!(
        script.contains("step 'runcmd[0]' sh -c 'echo one'"),
        "{script}"
    );
    assert!(script.contains("'python3' 'app.py' &"), "{script}");
    assert_eq!(
        serde_json::from_slice::<Value>(&files[".occopus-instance.json"]).unwrap(),
        data
    );

    let spawned = h.mock().spawned();
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0].argv, ["sh", ".occopus-run.sh"]);
    assert_eq!(spawned[0].log_file, "node.log");
    let env = |k: &str| {
        spawned[0]
            .env
            .iter()
            .find(|(k2, _)| k2 == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(env("OCCOPUS_ADDRESS").as_deref(), Some("127.0.0.2"));
    assert_eq!(env("PORT").as_deref(), Some("8080"));
    assert_eq!(
        env("OCCOPUS_NODE_ID").as_deref(),
        Some(Harness::node().node_id.as_str())
    );

    let addr = h.addresses(resource.clone(), data.clone()).await.unwrap();
    assert_eq!(
        (addr.primary.as_deref(), addr.private.as_deref()),
        (Some("127.0.0.2"), Some("127.0.0.2"))
    );
    // Nothing has written `ready` to the phase file: the mock runs nothing.
    assert_eq!(
        h.state(resource, data).await.unwrap().status,
        NodeStatus::Pending
    );
}

#[tokio::test]
async fn create_adopts_by_node_id_until_the_process_is_gone() {
    let h = harness().await;
    let resource = json!({"type": "local", "command": "sleep 60"});
    let first = create(&h, resource.clone(), None).await.unwrap();
    let again = create(&h, resource.clone(), None).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(h.mock().spawned().len(), 1, "adopted, not started twice");
    let found = h
        .resource_handler()
        .unwrap()
        .find(&h.create_request(resource.clone()))
        .await
        .unwrap();
    assert_eq!(found, Some(first.clone()));

    // An exited process is still this node's (state reports it); a gone one is not.
    let pid = first["process"]["pid"].as_u64().unwrap() as u32;
    h.mock().set_status(pid, ProcessStatus::Exited(1));
    assert_eq!(create(&h, resource.clone(), None).await.unwrap(), first);
    h.mock().set_status(pid, ProcessStatus::Gone);
    let found = h
        .resource_handler()
        .unwrap()
        .find(&h.create_request(resource.clone()))
        .await
        .unwrap();
    assert_eq!(found, None);
    let fresh = create(&h, resource, None).await.unwrap();
    assert_ne!(fresh["process"], first["process"]);
    assert_eq!(h.mock().spawned().len(), 2);
}

#[tokio::test]
async fn setup_that_outlives_its_timeout_is_failed() {
    let start = 1_700_000_000_000;
    let h = Harness::load_with(
        component::path(),
        Options {
            now_unix_ms: start,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let resource = json!({"type": "local", "setup_timeout": 30});
    let data = create(
        &h,
        resource.clone(),
        Some("#cloud-config\nruncmd: [sleep 999]\n"),
    )
    .await
    .unwrap();
    h.mock().set_time(start + 29_000);
    assert_eq!(
        h.state(resource.clone(), data.clone())
            .await
            .unwrap()
            .status,
        NodeStatus::Pending
    );
    h.mock().set_time(start + 31_000);
    let st = h.state(resource, data).await.unwrap();
    assert_eq!(st.status, NodeStatus::Failed, "{st:?}");
    assert!(
        st.message
            .unwrap()
            .starts_with("setup did not finish within 30 s")
    );
}

#[tokio::test]
async fn destroy_kills_and_releases_and_is_idempotent() {
    let h = harness().await;
    let resource = json!({"type": "local", "command": "sleep 60", "keep_workdir": true});
    let data = create(&h, resource.clone(), None).await.unwrap();
    h.destroy(resource.clone(), data.clone()).await.unwrap();
    let st = h.state(resource.clone(), data.clone()).await.unwrap();
    assert_eq!(
        st.status,
        NodeStatus::Shutdown,
        "the mock records SIGTERM: {st:?}"
    );
    assert!(st.message.unwrap().contains("killed by signal 15"));
    assert!(
        h.mock().files().contains_key(".occopus-run.sh"),
        "keep_workdir keeps the files"
    );
    h.destroy(resource.clone(), data).await.unwrap();

    // Without keep_workdir the files go; a null instance (create never returned) is fine.
    let h = harness().await;
    let resource = json!({"type": "local"});
    create(&h, resource.clone(), None).await.unwrap();
    h.destroy(resource, Value::Null).await.unwrap();
    assert!(h.mock().files().is_empty(), "{:?}", h.mock().files().keys());
}

#[tokio::test]
async fn bad_sections_and_user_data_fail_before_any_effect() {
    let h = harness().await;
    let e = create(
        &h,
        json!({"type": "local", "env": {"A": "1"}, "command": []}),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PluginError::InvalidConfig { .. }), "{e:?}");
    let e = create(
        &h,
        json!({"type": "local"}),
        Some("#cloud-config\nruncmd: not-a-list\n"),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PluginError::InvalidConfig { .. }), "{e:?}");
    assert!(h.mock().spawned().is_empty());
    assert!(h.mock().files().is_empty());
}
