//! Routing by section type, the three plugin kinds, and host-side schema checks.

use crate::common::*;
use occopus_model::instance::Addresses;
use occopus_model::plugin::{
    CmInfraRequest, CmNodeRequest, HealthStatus, PluginError, PluginHost, PluginKind,
};
use occopus_model::secret::Secret;
use occopus_model::status::NodeStatus;
use serde_json::json;

#[tokio::test]
async fn routes_each_kind_by_type_name() {
    let (rt, _dir) = load(&["echo", "health", "cm"]).await;
    assert!(rt.load_errors().is_empty(), "{:?}", rt.load_errors());
    let infos = rt.plugins();
    assert_eq!(infos.len(), 3);
    let echo = infos.iter().find(|p| p.name == "fixture-echo").unwrap();
    assert_eq!(echo.kind, PluginKind::ResourceHandler);
    assert_eq!(echo.abi, "occopus:plugin@0.1.0");
    assert!(
        echo.digest.starts_with("sha256:") && echo.digest.len() == 71,
        "{}",
        echo.digest
    );
    assert_eq!(echo.types[0].name, "fixture-echo");
    assert_eq!(echo.types[0].schema["required"], json!(["image"]));

    let rh = rt.resource_handler("fixture-echo").unwrap();
    let mut req = create("fixture-echo", json!({"image": "busybox"}));
    req.credentials = Some(Secret::new(json!({"secret": "hunter2"})));
    let inst = rh.create(&req).await.unwrap();
    assert_eq!(inst["node_id"], "node-1");
    assert_eq!(inst["resource"]["image"], "busybox");
    assert_eq!(inst["context"], "#cloud-config");
    assert_eq!(inst["attributes"]["env"][0], "A=1");
    assert_eq!(inst["has_credentials"], true);
    let r = instance("fixture-echo", "node-1", inst);
    assert_eq!(rh.state(&r).await.unwrap().status, NodeStatus::Ready);
    assert_eq!(
        rh.addresses(&r).await.unwrap().primary.as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(rh.cost(&r).await.unwrap(), Some(0.0));
    assert_eq!(rh.find(&req).await.unwrap(), None);
    rh.destroy(&r).await.unwrap();

    let hc = rt.health_checker("fixture-health").unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let rep = hc
        .check(&health(json!({"port": port}), "127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(rep.status, HealthStatus::Ready, "{rep:?}");

    let cm = rt.config_manager("fixture-cm").unwrap();
    let infra = CmInfraRequest {
        infra_id: node("n").infra_id,
        type_name: "fixture-cm".into(),
        section: json!({}),
        credentials: None,
    };
    cm.create_infrastructure(&infra).await.unwrap();
    assert!(cm.infrastructure_exists(&infra).await.unwrap());
    let nr = CmNodeRequest {
        node: node("n"),
        type_name: "fixture-cm".into(),
        section: json!({}),
        credentials: None,
        attributes: json!(null),
        addresses: Addresses::default(),
    };
    assert_eq!(cm.node_state(&nr).await.unwrap(), NodeStatus::Ready);
    assert_eq!(
        cm.node_attribute(&nr, "greeting").await.unwrap(),
        Some(json!("hello"))
    );
    assert_eq!(cm.node_attribute(&nr, "other").await.unwrap(), None);
    assert_eq!(
        cm.resolve_attributes(&nr).await.unwrap(),
        json!({"cm": "fixture"})
    );
    cm.drop_node(&nr).await.unwrap();
    cm.drop_infrastructure(&infra).await.unwrap();
}

#[tokio::test]
async fn unknown_types_get_a_suggestion() {
    let (rt, _dir) = load(&["echo"]).await;
    let e = rt.resource_handler("fixture-ecoh").err().unwrap();
    assert_eq!(
        e.to_string(),
        "no resource-handler plugin handles type `fixture-ecoh`; did you mean `fixture-echo`? (known types: fixture-echo)"
    );
    // Routing is per kind: the echo type is not a health checker.
    assert!(rt.health_checker("fixture-echo").is_err());
}

#[tokio::test]
async fn schema_is_checked_before_any_call() {
    let (rt, _dir) = load(&["echo"]).await;
    let errs = rt
        .check_section(
            PluginKind::ResourceHandler,
            "fixture-echo",
            &json!({"image": "x", "count": "two"}),
            false,
        )
        .unwrap();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "/count");
    assert!(errs[0].message.contains("integer"), "{}", errs[0].message);
    // Unrendered templates stand in for scalars.
    let errs = rt
        .check_section(
            PluginKind::ResourceHandler,
            "fixture-echo",
            &json!({"image": "x", "count": "{{ n }}"}),
            true,
        )
        .unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    assert!(
        rt.check_section(PluginKind::HealthChecker, "fixture-echo", &json!({}), false)
            .is_err()
    );

    let rh = rt.resource_handler("fixture-echo").unwrap();
    let e = rh
        .create(&create("fixture-echo", json!({"image": "x", "count": 0})))
        .await
        .unwrap_err();
    match e {
        PluginError::InvalidConfig { path, message } => {
            assert_eq!(path, "/count");
            assert!(message.contains("minimum"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let e = rh.validate("fixture-echo", &json!({})).await.unwrap_err();
    assert!(
        matches!(&e, PluginError::InvalidConfig { path, message } if path.is_empty() && message.contains("\"image\" is a required property")),
        "{e:?}"
    );
    // The plugin's own validation runs after the schema passes.
    let e = rh
        .validate("fixture-echo", &json!({"image": "x", "reject": true}))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PluginError::invalid("/reject", "rejected because the section asks for it")
    );
    rh.validate("fixture-echo", &json!({"image": "x"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn inventory_and_inspect_serialise_what_plugins_list_shows() {
    let (rt, dir) = load_with(&["echo", "bad-metadata"], |c| {
        c.plugins.insert(
            "fixture-echo".into(),
            occopus_runtime::PluginGrant {
                memory_mb: Some(64),
                timeouts: [("create".to_string(), 30)].into(),
                ..Default::default()
            },
        );
    })
    .await;
    let inv = serde_json::to_value(rt.inventory()).unwrap();
    assert_eq!(inv["abi"], "occopus:plugin@0.1.0");
    assert_eq!(inv["search_path"], json!([dir.path()]));
    assert_eq!(inv["cache_dir"], json!(null));
    assert_eq!(inv["errors"].as_array().unwrap().len(), 1);
    assert!(
        inv["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("bad metadata"),
        "{inv}"
    );
    let p = &inv["plugins"][0];
    for key in [
        "name",
        "version",
        "kind",
        "abi",
        "types",
        "requested",
        "granted",
        "digest",
        "source",
        "description",
        "path",
        "cache",
        "limits",
    ] {
        assert!(p.get(key).is_some(), "`{key}` missing from {p}");
    }
    assert_eq!(p["kind"], "resource-handler");
    assert_eq!(p["cache"], "disabled");
    assert_eq!(p["types"][0]["schema"]["required"], json!(["image"]));
    assert_eq!(
        p["limits"],
        json!({"memory_mb": 64, "max_instances": 8, "timeout_s": 5, "long_timeout_s": 5, "timeouts": {"create": 30}})
    );

    // By name or by a type it handles.
    assert_eq!(
        rt.inspect("fixture-echo").unwrap().info.name,
        "fixture-echo"
    );
    assert_eq!(
        rt.inspect("fixture-echo").unwrap().path,
        dir.path().join("echo.wasm")
    );
    assert!(rt.inspect("nothing").is_none());
    rt.instantiate_once("fixture-echo").await.unwrap();
    assert!(
        rt.instantiate_once("nothing")
            .await
            .unwrap_err()
            .contains("no plugin named `nothing`")
    );
}
